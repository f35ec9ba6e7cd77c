/**
 * The training page (main thread). It holds no model: it reads the user's choices (model, data,
 * settings, prompts), sends them to the Web Worker (worker.js, the library on onnxruntime-web) as the
 * messages of src/web/protocol.ts, and shows what comes back: the backend, the loss curve, tokens/s
 * and ETA, generations before and after training, the adapter's files.
 *
 * Page state, on #status's data-state: no-model, loading, ready, training, stopping, stopped, done.
 */
import type {
  BackendInfo,
  FileMap,
  FromWorker,
  GenerationResult,
  ToWorker,
  WebTrainSettings,
} from "../src/web/protocol.js";
import { LossChart } from "./page/chart.js";
import { byId, el, formatSeconds } from "./page/dom.js";
import { offerDownloads } from "./page/download.js";
import {
  ADAPTER_FILES,
  DEFAULT_MODEL_URL,
  fetchDefaultModel,
  fetchText,
  folderLabel,
  isModelFileName,
  readPicked,
  transferables,
} from "./page/files.js";
import { formatPrompts, parsePrompts, promptsFromJsonl } from "./page/prompts.js";
import { DEMO_SETTINGS, defaultSettings, readSettings, writeSettings } from "./page/settings.js";

type State = "no-model" | "loading" | "ready" | "training" | "stopping" | "stopped" | "done";

const ui = {
  error: byId("error"),
  modelDefault: byId<HTMLButtonElement>("model-default"),
  modelFolder: byId<HTMLInputElement>("model-folder"),
  modelInfo: byId("model-info"),
  backend: byId("backend"),
  dataExample: byId<HTMLButtonElement>("data-example"),
  dataFile: byId<HTMLInputElement>("data-file"),
  dataName: byId("data-name"),
  dataDrop: byId("data-drop"),
  dataText: byId<HTMLTextAreaElement>("data-text"),
  dataInfo: byId("data-info"),
  settingsDemo: byId<HTMLButtonElement>("settings-demo"),
  settingsDefaults: byId<HTMLButtonElement>("settings-defaults"),
  train: byId<HTMLButtonElement>("train"),
  stop: byId<HTMLButtonElement>("stop"),
  resume: byId<HTMLButtonElement>("resume"),
  status: byId("status"),
  prompts: byId<HTMLTextAreaElement>("prompts"),
  maxNewTokens: byId<HTMLInputElement>("max-new-tokens"),
  generate: byId<HTMLButtonElement>("generate"),
  answers: {
    before: byId<HTMLOListElement>("answers-before"),
    after: byId<HTMLOListElement>("answers-after"),
    loaded: byId<HTMLOListElement>("answers-loaded"),
  },
  download: byId<HTMLButtonElement>("download"),
  downloadLinks: byId("download-links"),
  loadAdapter: byId<HTMLInputElement>("load-adapter"),
  adapterInfo: byId("adapter-info"),
};

const chart = new LossChart(byId("loss-chart"));
let state: State = "no-model";
/** A run has started since the model loaded: its adapter can be exported and generated with. */
let runStarted = false;
let adapterLoaded = false;
/** The data's file name as the worker sees it (it infers the format from it and the content). */
let dataName: string | null = null;
/** Generations asked for and not answered yet: Generate waits for them. */
let pendingGenerations = 0;
/** The last step's training rate, for the summary at the end. */
let lastTokensPerSec: number | null = null;

// ---- errors: one line on the page, never swallowed ----

function showError(message: string): void {
  ui.error.textContent = message.split("\n")[0] ?? message;
  ui.error.hidden = false;
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

/** Runs an action from a button, showing its failure as the page's error line. */
function guarded(action: () => unknown): () => void {
  return () => {
    clearError();
    Promise.resolve()
      .then(action)
      .catch((e: unknown) => showError(e instanceof Error ? e.message : String(e)));
  };
}

window.addEventListener("error", (e) => showError(`page: ${e.message}`));
window.addEventListener("unhandledrejection", (e) => showError(`page: ${String(e.reason)}`));

// ---- the worker ----

const worker = new Worker("worker.js", { type: "module" });
worker.addEventListener("error", (e) => {
  showError(`worker: ${e.message || "the worker failed to start (worker.js)"}`);
  if (state === "loading" || state === "training" || state === "stopping")
    setState(runStarted ? "stopped" : "no-model");
});
worker.addEventListener("message", (e: MessageEvent<FromWorker>) => onMessage(e.data));

function send(message: ToWorker, transfer: Transferable[] = []): void {
  worker.postMessage(message, transfer);
}

// ---- state and buttons ----

function setState(next: State, text?: string): void {
  state = next;
  ui.status.dataset["state"] = next;
  if (text !== undefined) ui.status.textContent = text;
  const busy = next === "loading" || next === "training" || next === "stopping";
  const hasModel = next !== "no-model" && next !== "loading";
  ui.modelDefault.disabled = busy;
  ui.modelFolder.disabled = busy;
  // The worker does one thing at a time: training waits for the generations asked for.
  const generating = pendingGenerations > 0;
  ui.train.disabled = !hasModel || busy || generating;
  ui.stop.disabled = next !== "training";
  ui.resume.disabled = next !== "stopped" || generating;
  ui.generate.disabled = !hasModel || busy || generating;
  ui.download.disabled = !runStarted || busy;
  ui.loadAdapter.disabled = !hasModel || busy;
}

function showBackend(b: BackendInfo): void {
  const name =
    b.name === "webgpu" ? "WebGPU" : `WebAssembly, ${b.threads} thread${b.threads === 1 ? "" : "s"}`;
  // The reason is a sentence that may start with the backend's name already.
  ui.backend.textContent = b.reason.startsWith(name)
    ? `Backend: ${b.reason}`
    : `Backend: ${name}. ${b.reason}`;
  ui.backend.dataset["backend"] = b.name;
  ui.backend.dataset["threads"] = String(b.threads);
}

// ---- model ----

let modelIsDefault = false;

async function loadModel(label: string, files: FileMap, isDefault: boolean): Promise<void> {
  if (files["config.json"] === undefined) throw new Error(`${label}: no config.json among the picked files`);
  if (!Object.keys(files).some((n) => n.endsWith(".safetensors")))
    throw new Error(`${label}: no *.safetensors among the picked files`);
  modelIsDefault = isDefault;
  runStarted = false;
  adapterLoaded = false;
  for (const list of Object.values(ui.answers)) list.replaceChildren();
  chart.reset(0);
  const mb = Object.values(files).reduce((n, b) => n + b.byteLength, 0) / 1e6;
  ui.modelInfo.textContent = `Loading ${label} (${mb.toFixed(1)} MB)…`;
  send({ type: "load-model", label, files }, transferables(files));
}

ui.modelDefault.addEventListener(
  "click",
  guarded(async () => {
    setState("loading", "Fetching the default model…");
    try {
      const files = await fetchDefaultModel();
      // The default model's own held-out prompts, unless the user has typed some.
      if (ui.prompts.value.trim() === "") {
        // (`lora-ts web --model DIR` serves a folder that may not have them.)
        const heldout = await fetchText(`${DEFAULT_MODEL_URL}data/persona-heldout.jsonl`).catch(() => null);
        if (heldout !== null) ui.prompts.value = formatPrompts(promptsFromJsonl(heldout, 3));
      }
      setState("loading", "Loading the model in the worker…");
      await loadModel("default model", files, true);
    } catch (e) {
      setState("no-model", "Load a model to start.");
      throw e;
    }
  }),
);

ui.modelFolder.addEventListener(
  "change",
  guarded(async () => {
    const list = ui.modelFolder.files;
    if (list === null || list.length === 0) return;
    setState("loading", "Reading the model folder…");
    try {
      const label = folderLabel(list);
      const files = await readPicked(list, isModelFileName);
      ui.modelFolder.value = "";
      setState("loading", "Loading the model in the worker…");
      await loadModel(label, files, false);
    } catch (e) {
      setState("no-model", "Load a model to start.");
      throw e;
    }
  }),
);

// ---- data ----

function setData(name: string | null, text: string): void {
  dataName = name;
  ui.dataText.value = text;
  ui.dataName.textContent = name ?? "pasted text";
  ui.dataInfo.textContent = "";
}

/** Pasted text's name: the worker infers the format from it and the content, as the CLI does. */
function pastedName(text: string): string {
  const t = text.trim();
  if (t.startsWith("[")) return "pasted.json";
  const lines = t.split("\n").filter((l) => l.trim() !== "");
  return lines.length > 0 && lines.every((l) => l.trim().startsWith("{")) ? "pasted.jsonl" : "pasted.txt";
}

ui.dataExample.addEventListener(
  "click",
  guarded(async () => {
    const text = await fetchText(`${DEFAULT_MODEL_URL}data/persona.jsonl`).catch(() => {
      throw new Error("example data: the served model has no data/persona.jsonl (the embedded model has)");
    });
    setData("persona.jsonl", text);
  }),
);

async function takeDataFile(file: File): Promise<void> {
  setData(file.name, await file.text());
}

ui.dataFile.addEventListener(
  "change",
  guarded(async () => {
    const f = ui.dataFile.files?.[0];
    if (f) await takeDataFile(f);
    ui.dataFile.value = "";
  }),
);

ui.dataDrop.addEventListener("dragover", (e) => {
  e.preventDefault();
  ui.dataDrop.classList.add("over");
});
ui.dataDrop.addEventListener("dragleave", () => ui.dataDrop.classList.remove("over"));
ui.dataDrop.addEventListener("drop", (e) => {
  e.preventDefault();
  ui.dataDrop.classList.remove("over");
  const f = e.dataTransfer?.files[0];
  if (f) guarded(() => takeDataFile(f))();
});

// Typing over an opened file keeps its name (and so its format); clearing the box forgets it.
ui.dataText.addEventListener("input", () => {
  if (ui.dataText.value.trim() === "") setData(null, "");
});

// ---- settings ----

ui.settingsDemo.addEventListener("click", () => writeSettings(DEMO_SETTINGS));
ui.settingsDefaults.addEventListener("click", () => defaultSettings());
defaultSettings();

// ---- training ----

let settings: WebTrainSettings | null = null;

ui.train.addEventListener(
  "click",
  guarded(() => {
    const text = ui.dataText.value;
    if (text.trim() === "")
      throw new Error("data: paste text or JSONL, open a file, or take the example data");
    settings = readSettings();
    const name = dataName ?? pastedName(text);
    chart.reset(settings.steps);
    lastTokensPerSec = null;
    // The worker lets the last run go when a new one starts: its adapter is no longer there.
    runStarted = false;
    ui.answers.after.replaceChildren();
    ui.dataInfo.textContent = "";
    setState("training", "Starting…");
    send({ type: "train", data: { name, text }, settings });
  }),
);

ui.stop.addEventListener("click", () => {
  setState("stopping", "Stopping after this step…");
  send({ type: "stop" });
});

ui.resume.addEventListener(
  "click",
  guarded(() => {
    setState("training", "Resuming…");
    send({ type: "resume" });
  }),
);

// ---- generation ----

function requestGeneration(tag: string, adapter: "trained" | "loaded" | null): void {
  const prompts = parsePrompts(ui.prompts.value);
  if (prompts.length === 0) return;
  const n = Number(ui.maxNewTokens.value);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`new tokens: expected an integer >= 1, got ${JSON.stringify(ui.maxNewTokens.value)}`);
  const list = ui.answers[tag as keyof typeof ui.answers];
  list.replaceChildren(el("li", "generating…", "pending"));
  pendingGenerations++;
  setState(state);
  send({ type: "generate", tag, prompts, maxNewTokens: n, adapter });
}

ui.generate.addEventListener(
  "click",
  guarded(() => {
    if (parsePrompts(ui.prompts.value).length === 0) throw new Error("prompts: type at least one prompt");
    requestGeneration("before", null);
    if (runStarted) requestGeneration("after", "trained");
    if (adapterLoaded) requestGeneration("loaded", "loaded");
  }),
);

function showGeneration(tag: string, results: GenerationResult[]): void {
  const list = ui.answers[tag as keyof typeof ui.answers];
  if (list === undefined) return;
  list.replaceChildren(
    ...results.map((r) => {
      const li = el("li");
      li.className = "answer";
      li.dataset["ids"] = JSON.stringify(r.ids);
      li.dataset["promptIds"] = JSON.stringify(r.promptIds);
      li.dataset["prompt"] = r.prompt;
      li.append(el("div", r.prompt, "prompt"), el("div", r.text, "text"));
      return li;
    }),
  );
}

// ---- adapter ----

ui.download.addEventListener(
  "click",
  guarded(() => {
    ui.downloadLinks.textContent = "Preparing the adapter…";
    send({ type: "export-adapter" });
  }),
);

ui.loadAdapter.addEventListener(
  "change",
  guarded(async () => {
    const list = ui.loadAdapter.files;
    if (list === null || list.length === 0) return;
    const files = await readPicked(list, (n) => (ADAPTER_FILES as readonly string[]).includes(n));
    ui.loadAdapter.value = "";
    const missing = ADAPTER_FILES.filter((n) => files[n] === undefined);
    if (missing.length > 0) throw new Error(`load adapter: pick ${missing.join(" and ")} too`);
    ui.adapterInfo.textContent = "Loading the adapter…";
    send({ type: "load-adapter", files }, transferables(files));
  }),
);

// ---- messages from the worker ----

function onMessage(m: FromWorker): void {
  switch (m.type) {
    case "model-loaded": {
      const s = m.model;
      ui.modelInfo.textContent =
        `${s.label}: ${s.modelType}, ${s.layers} layers, hidden ${s.hidden}, vocabulary ${s.vocab}, ` +
        `${(s.parameters / 1e6).toFixed(1)}M parameters, context ${s.context}`;
      showBackend(m.backend);
      setState("ready", "Model loaded. Take some data and press Train.");
      if (modelIsDefault && dataName === null && ui.dataText.value.trim() === "")
        ui.dataInfo.textContent = "Tip: “Example data (persona)” takes the default model's demo data.";
      guarded(() => requestGeneration("before", null))();
      break;
    }
    case "data": {
      const d = m.data;
      ui.dataInfo.textContent = [
        `${d.name}: ${d.format}, ${d.rows} rows, ${d.examples} examples, ${d.tokens} tokens`,
        ...d.notes,
      ].join("\n");
      break;
    }
    case "started":
      runStarted = true;
      showBackend(m.backend);
      setState(
        "training",
        m.startStep > 0
          ? `Resumed at step ${m.startStep} of ${m.totalSteps}`
          : `Training ${m.trainableParams.toLocaleString("en-US")} LoRA parameters, ${m.totalSteps} steps…`,
      );
      break;
    case "step":
      lastTokensPerSec = m.tokensPerSec;
      chart.add(m.step, m.loss, m.totalSteps);
      ui.status.dataset["step"] = String(m.step);
      ui.status.textContent =
        `Step ${m.step} of ${m.totalSteps} · loss ${m.loss.toFixed(4)} · ` +
        `${Math.round(m.tokensPerSec).toLocaleString("en-US")} tokens/s · ` +
        `elapsed ${formatSeconds(m.elapsedSec)} · ETA ${formatSeconds(m.etaSec)}`;
      if (state === "stopping") ui.status.textContent += " · stopping after this step…";
      break;
    case "stopped":
      setState("stopped", `Stopped at step ${m.step} of ${m.totalSteps}. Resume continues the run.`);
      guarded(() => requestGeneration("after", "trained"))();
      break;
    case "done": {
      const loss = m.finalLoss === null ? "" : `, final loss ${m.finalLoss.toFixed(4)}`;
      const rate =
        lastTokensPerSec === null ? "" : `, ${Math.round(lastTokensPerSec).toLocaleString("en-US")} tokens/s`;
      setState("done", `Done: ${m.step} steps in ${formatSeconds(m.seconds)}${loss}${rate}.`);
      guarded(() => requestGeneration("after", "trained"))();
      break;
    }
    case "generation":
      pendingGenerations = Math.max(0, pendingGenerations - 1);
      showGeneration(m.tag, m.results);
      setState(state);
      break;
    case "adapter":
      offerDownloads(m.files, ui.downloadLinks, ADAPTER_FILES);
      break;
    case "adapter-loaded":
      adapterLoaded = true;
      ui.adapterInfo.textContent = `Adapter loaded: r ${m.r}, ${m.tensors} tensors, targets ${m.targets.join(", ")}`;
      guarded(() => requestGeneration("loaded", "loaded"))();
      break;
    case "error":
      showError(`${m.during}: ${m.message}`);
      if (m.during === "generate") pendingGenerations = Math.max(0, pendingGenerations - 1);
      if (m.during === "load-model") {
        ui.modelInfo.textContent = "No model loaded.";
        setState("no-model", "Load a model to start.");
      } else if (m.during === "train" || m.during === "resume" || m.during === "stop") {
        setState("ready", "Training stopped by an error.");
      } else if (m.during === "export-adapter") {
        ui.downloadLinks.textContent = "";
      } else {
        setState(state);
      }
      break;
  }
}

setState("no-model", "Load a model to start.");
