/**
 * `--base-int8`'s frozen weights quantized on worker threads, while the main thread builds the graph
 * and creates the session. Quantizing is a pass over every weight (a 1B model: 1.2 billion, about
 * 15 s on one thread), and the graph only needs each weight's shape: base-context.ts builds with
 * the shapes, and the values are put into the feeds when `ready` resolves (Int8Feeds.fill). The
 * workers' buffers are transferred, not copied, so the weights exist once.
 *
 * Node only (worker_threads): the browser's training run quantizes on its one thread as it builds.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { Int8Weight } from "../graph/int8.js";
import { int8WeightMax } from "../graph/ort-node.js";
import type { WeightStore } from "../io/hf-model.js";
import { LoraTsError } from "../util/errors.js";
import type { HfModel } from "./assemble-model.js";
import type { ModuleInfo } from "./module.js";
import { listModules } from "./modules.js";

/** One weight for a worker: where its bytes are and how it is stored. */
export interface QuantizeJob {
  index: number;
  /** The checkpoint name it is kept under. */
  name: string;
  /** The safetensors file and the tensor's name inside it. */
  file: string;
  storedName: string;
  out: number;
  in: number;
  /** Stored as Wᵀ [in, out] (GPT-2's Conv1D). */
  transposed: boolean;
  qmax: number;
}

/** Weights being quantized, by checkpoint name ("<path>.weight"). */
export interface Int8Source {
  /** [out, in] of each: all the graph needs. */
  shapes: ReadonlyMap<string, { out: number; in: number }>;
  /** The quantized weights, once every one is done. */
  ready: Promise<ReadonlyMap<string, Int8Weight>>;
}

/**
 * Starts quantizing the weight of every linear module in `modules` (but those in `skip`, e.g.
 * PiSSA's replaced weights) on `workers` threads (default: one per core). `qmax`: 127, or 63 where
 * the CPU's int8 kernel saturates (ort-node.ts int8WeightMax).
 */
export function quantizeInBackground(
  store: WeightStore,
  modules: readonly ModuleInfo[],
  qmax: number,
  opts: { skip?: ReadonlySet<string>; workers?: number } = {},
): Int8Source {
  const shapes = new Map<string, { out: number; in: number }>();
  const jobs: QuantizeJob[] = [];
  for (const m of modules) {
    const name = `${m.path}.weight`;
    if (m.kind !== "linear" || opts.skip?.has(name) || shapes.has(name)) continue;
    const info = store.info(name);
    shapes.set(name, { out: m.outFeatures, in: m.inFeatures });
    jobs.push({
      index: jobs.length,
      name,
      file: info.file,
      storedName: info.storedName,
      out: m.outFeatures,
      in: m.inFeatures,
      transposed: m.fanInFanOut === true,
      qmax,
    });
  }
  // Largest first, so that the last job to finish is a small one.
  jobs.sort((a, b) => b.out * b.in - a.out * a.in);
  const n = Math.max(1, Math.min(jobs.length, Math.floor(opts.workers ?? availableParallelism())));
  const ready = jobs.length === 0 ? Promise.resolve(new Map<string, Int8Weight>()) : runJobs(jobs, n);
  // Awaited only after the session is created: until then a failure must not count as unhandled.
  ready.catch(() => {});
  return { shapes, ready };
}

/** Hands the jobs to `n` workers, the next to whichever finishes first; rejects on the first error. */
function runJobs(jobs: QuantizeJob[], n: number): Promise<Map<string, Int8Weight>> {
  const byIndex = new Map(jobs.map((j) => [j.index, j]));
  const weights = new Map<string, Int8Weight>();
  return new Promise((resolve, reject) => {
    let next = 0;
    let failed = false;
    const workers: Worker[] = [];
    const fail = (message: string) => {
      if (failed) return;
      failed = true;
      for (const w of workers) void w.terminate();
      reject(new LoraTsError(message));
    };
    const feed = (w: Worker) => w.postMessage(next < jobs.length ? jobs[next++] : null);
    type Done = { index: number; error?: string; q: Int8Array; qT: Int8Array; scale: Float32Array };
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL("./int8-quantize-worker.js", import.meta.url));
      workers.push(w);
      w.on("message", (m: Done) => {
        if (failed) return;
        const j = byIndex.get(m.index)!;
        if (m.error !== undefined) {
          // The message names the file already (the safetensors reader's errors do).
          fail(`--base-int8: quantizing ${j.storedName}: ${m.error}`);
          return;
        }
        weights.set(j.name, { q: m.q, qT: m.qT, scale: m.scale, out: j.out, in: j.in });
        if (weights.size === jobs.length) resolve(weights);
        feed(w);
      });
      w.on("error", (e) => fail(`--base-int8: a quantizing thread failed: ${e.message.split("\n")[0]}`));
      feed(w);
    }
  });
}

/**
 * quantizeInBackground for every linear layer of `model`, at the CPU's int8 range, but the weights
 * of `replacedPaths` (PiSSA's residuals, which live in memory and are quantized as the graph is built).
 */
export function quantizeModelInBackground(
  model: HfModel,
  replacedPaths: Iterable<string> = [],
  workers?: number,
): Int8Source {
  const skip = new Set([...replacedPaths].map((p) => `${p}.weight`));
  return quantizeInBackground(model.weights, listModules(model.config), int8WeightMax(), { skip, workers });
}
