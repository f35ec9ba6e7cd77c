/**
 * The training page's Web Worker: holds the model, the training run and the adapters, and answers
 * the page's messages (src/web/protocol.ts). Training runs here so the page stays responsive; a stop
 * request is seen between steps, because each message is handled while the run awaits its step.
 *
 * Backend: WebAssembly (SIMD, with threads when the page is cross-origin isolated), or WebGPU when the
 * browser offers an adapter AND WebGPU's loss on the run's first batch agrees with WebAssembly's
 * (software WebGPU was measured to give a wrong loss): the page is told which and why.
 */
import { ort } from "../src/graph/ort-web.js";
import { bytesSource } from "../src/io/byte-source.js";
import { type Adapter, parseAdapter } from "../src/lora/adapter.js";
import { listModules } from "../src/models/modules.js";
import { greedyAnswers } from "../src/web/answers.js";
import { openModelFiles, type WebModel } from "../src/web/model-files.js";
import type { BackendInfo, FileMap, FromWorker, ToWorker } from "../src/web/protocol.js";
import { TrainingRun } from "../src/web/training-run.js";

/** WebGPU's first-batch loss and gradients must match WebAssembly's within this (relative) to be used. */
const WEBGPU_AGREEMENT = 1e-3;

const scope = self as unknown as DedicatedWorkerGlobalScope;
const threads = scope.crossOriginIsolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 16)) : 1;
ort.env.wasm.numThreads = threads;
ort.env.wasm.wasmPaths = new URL("/ort/", scope.location.origin).href;

let web: WebModel | null = null;
let run: TrainingRun | null = null;
let loaded: Adapter | null = null;
let stopRequested = false;
let training = false;
let backend: BackendInfo = {
  name: "wasm",
  threads,
  reason: wasmReason("WebGPU is tried when training starts."),
};

function post(m: FromWorker): void {
  scope.postMessage(m);
}

/** Why WebAssembly runs on the threads it does (BackendInfo.reason is the why, not the name). */
function wasmReason(why: string): string {
  return scope.crossOriginIsolated
    ? why
    : `${why} The page is not cross-origin isolated, so WebAssembly runs on one thread.`;
}

/** ‖a − b‖ / ‖b‖ over all the tensors together. */
function relativeDistance(a: Float32Array[], b: Float32Array[]): number {
  let diff = 0;
  let norm = 0;
  b.forEach((t, i) => {
    const u = a[i]!;
    for (let k = 0; k < t.length; k++) {
      diff += (u[k]! - t[k]!) ** 2;
      norm += t[k]! ** 2;
    }
  });
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
}

/** A one-line message: the library's errors are one line already; anything else is cut to its first. */
function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}

/**
 * WebGPU when an adapter is offered and it agrees with WebAssembly on the run's first batch;
 * WebAssembly otherwise, with the reason.
 */
async function chooseBackend(r: TrainingRun): Promise<BackendInfo> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return { name: "wasm", threads, reason: wasmReason("This browser offers no WebGPU.") };
  let adapter: unknown = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    adapter = null;
  }
  if (!adapter) return { name: "wasm", threads, reason: wasmReason("WebGPU offers no adapter.") };
  let wasm: { loss: number; grads: Float32Array[] };
  let webgpu: { loss: number; grads: Float32Array[] };
  try {
    wasm = await r.probe("wasm");
    webgpu = await r.probe("webgpu");
  } catch (e) {
    return { name: "wasm", threads, reason: wasmReason(`WebGPU failed: ${oneLine(e)}.`) };
  }
  const lossDiff = Math.abs(webgpu.loss - wasm.loss) / Math.max(Math.abs(wasm.loss), 1e-12);
  const gradDiff = relativeDistance(webgpu.grads, wasm.grads);
  if (!(lossDiff <= WEBGPU_AGREEMENT && gradDiff <= WEBGPU_AGREEMENT))
    return {
      name: "wasm",
      threads,
      reason: wasmReason(
        `WebGPU disagrees with WebAssembly on the first batch (loss ${webgpu.loss.toPrecision(6)} vs ${wasm.loss.toPrecision(6)}, ` +
          `gradients ${gradDiff.toExponential(1)} apart), so it is not used.`,
      ),
    };
  await r.useDevice("webgpu");
  return {
    name: "webgpu",
    threads,
    reason: `Its loss and gradients agree with WebAssembly's within ${WEBGPU_AGREEMENT} on the first batch.`,
  };
}

async function advance(r: TrainingRun): Promise<void> {
  training = true;
  stopRequested = false;
  try {
    const end = await r.advance(
      async () => {
        // A macrotask turn, so that a `stop` message posted during the last step is delivered.
        await new Promise((resolve) => setTimeout(resolve, 0));
        return stopRequested;
      },
      (m) => post(m),
    );
    if (end === "stopped") post({ type: "stopped", step: r.stepsDone, totalSteps: r.totalSteps });
    else post({ type: "done", step: r.stepsDone, seconds: r.seconds, finalLoss: r.finalLoss });
  } finally {
    training = false;
  }
}

function requireModel(): WebModel {
  if (!web) throw new Error("no model is loaded yet");
  return web;
}

/** Every request but `stop`, which onmessage acts on at once (it must reach a run in progress). */
async function handle(m: Exclude<ToWorker, { type: "stop" }>): Promise<void> {
  switch (m.type) {
    case "load-model": {
      if (training) throw new Error("stop the training run before loading another model");
      await run?.release();
      run = null;
      loaded = null;
      web?.model.weights.close();
      web = null;
      web = openModelFiles(m.files, m.label);
      const c = web.model.config;
      post({
        type: "model-loaded",
        model: {
          label: m.label,
          modelType: c.modelType,
          layers: c.layers,
          hidden: c.hidden,
          vocab: c.vocabSize,
          parameters: web.model.weights.parameterCount(),
          context: c.maxPositions,
        },
        backend,
      });
      return;
    }
    case "train": {
      const model = requireModel();
      if (training) throw new Error("a training run is already going");
      await run?.release();
      run = null;
      run = await TrainingRun.create(model, m.data, m.settings, { device: "wasm" });
      post({ type: "data", data: run.data });
      backend = await chooseBackend(run);
      post({
        type: "started",
        totalSteps: run.totalSteps,
        startStep: 0,
        trainableParams: run.trainableParams,
        backend,
      });
      await advance(run);
      return;
    }
    case "resume": {
      if (!run) throw new Error("there is no training run to resume");
      if (training) throw new Error("the run is already going");
      post({
        type: "started",
        totalSteps: run.totalSteps,
        startStep: run.stepsDone,
        trainableParams: run.trainableParams,
        backend,
      });
      await advance(run);
      return;
    }
    case "generate": {
      const model = requireModel();
      let adapter: Adapter | null = null;
      if (m.adapter === "trained") {
        if (!run) throw new Error("no adapter has been trained yet");
        adapter = run.adapter;
      } else if (m.adapter === "loaded") {
        if (!loaded) throw new Error("no adapter has been loaded");
        adapter = loaded;
      }
      const session = backend.name === "webgpu" ? { device: "webgpu" as const } : { device: "wasm" as const };
      const results = await greedyAnswers(model, adapter, m.prompts, m.maxNewTokens, session);
      post({ type: "generation", tag: m.tag, adapter: m.adapter, results });
      return;
    }
    case "export-adapter": {
      if (!run) throw new Error("no adapter has been trained yet");
      post({ type: "adapter", files: run.adapterFiles() });
      return;
    }
    case "load-adapter": {
      const model = requireModel();
      loaded = readAdapter(m.files, model);
      const t = loaded.config.target_modules;
      const targets = Array.isArray(t) ? [...t] : [String(t)];
      post({ type: "adapter-loaded", r: loaded.config.r, targets, tensors: loaded.tensors.size });
      return;
    }
  }
}

/** A picked adapter folder's two files, checked against the loaded model. */
function readAdapter(files: FileMap, model: WebModel): Adapter {
  const config = files["adapter_config.json"];
  const weights = files["adapter_model.safetensors"];
  if (!config) throw new Error("adapter_config.json was not among the picked files");
  if (!weights) throw new Error("adapter_model.safetensors was not among the picked files");
  return parseAdapter(
    new TextDecoder().decode(config),
    "adapter_config.json",
    bytesSource("adapter_model.safetensors", weights),
    "picked adapter",
    listModules(model.model.config),
    { modelType: model.model.config.modelType },
  );
}

// Messages are handled one after another, except `stop`, which must reach a run in progress.
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.type === "stop") {
    stopRequested = true;
    return;
  }
  queue = queue.then(() =>
    handle(m).catch((err: unknown) => post({ type: "error", during: m.type, message: oneLine(err) })),
  );
};
