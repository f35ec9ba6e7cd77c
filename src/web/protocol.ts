/**
 * The messages between the training page (main thread) and its Web Worker, which holds the model,
 * the onnxruntime-web sessions and the training state. Training runs in the worker so the page stays
 * responsive; everything crossing the boundary is plain data (structured clone), with file bytes as
 * Uint8Array.
 *
 * One worker holds one model at a time. The page sends `load-model`, then `train` (which may be
 * stopped with `stop` and continued with `resume`), `generate` at any point once a model is loaded,
 * `export-adapter` once a run has started, and `load-adapter` to use a saved adapter for generation.
 */
import type { StepMetrics } from "../train/events.js";

/** Files by name, as in a Hugging Face model folder or a PEFT adapter folder. */
export type FileMap = Record<string, Uint8Array>;

/** The LoRA and training settings the page offers, named and defaulted as the CLI's flags. */
export interface WebTrainSettings {
  r: number;
  alpha: number;
  dropout: number;
  /** As --targets: "all-linear", a comma-separated list of names, or "" for the model's PEFT default. */
  targets: string;
  lr: number;
  /** Optimizer steps (--max-steps). */
  steps: number;
  /** --max-length; capped by the model's context. */
  maxLength: number;
  batchSize: number;
  seed: number;
  schedule: "linear" | "cosine" | "constant";
  warmupSteps: number;
}

/** Which onnxruntime-web backend runs the graphs, and why. */
export interface BackendInfo {
  name: "wasm" | "webgpu";
  /** WebAssembly threads in use (1 when the page is not cross-origin isolated). */
  threads: number;
  /** One sentence for the page, e.g. "WebGPU: no adapter offered, using WebAssembly". */
  reason: string;
}

export interface ModelSummary {
  label: string;
  modelType: string;
  layers: number;
  hidden: number;
  vocab: number;
  parameters: number;
  /** The model's context length (max_position_embeddings). */
  context: number;
}

export interface DataSummaryMessage {
  name: string;
  format: string;
  rows: number;
  examples: number;
  tokens: number;
  /** Rows or examples not used, each with why (nothing is dropped without saying so). */
  notes: string[];
}

/** A training step as the CLI's trainer reports it (StepMetrics, less the epoch), with the run's end in view. */
export interface StepMessage extends Omit<StepMetrics, "type" | "epoch"> {
  type: "step";
  totalSteps: number;
  /** Seconds left at the current rate. */
  etaSec: number;
}

export interface GenerationResult {
  prompt: string;
  /** The prompt's token ids, encoded as `lora-ts generate --prompt` encodes them. */
  promptIds: number[];
  /** The generated ids (greedy), without the prompt. */
  ids: number[];
  text: string;
}

export type ToWorker =
  | { type: "load-model"; label: string; files: FileMap }
  | { type: "train"; data: { name: string; text: string }; settings: WebTrainSettings }
  | { type: "stop" }
  | { type: "resume" }
  | {
      type: "generate";
      /** Echoed back, e.g. "before" or "after". */
      tag: string;
      prompts: string[];
      maxNewTokens: number;
      /** "trained": the run's current adapter; "loaded": the adapter from load-adapter; null: the base. */
      adapter: "trained" | "loaded" | null;
    }
  | { type: "export-adapter" }
  | { type: "load-adapter"; files: FileMap };

export type FromWorker =
  | { type: "model-loaded"; model: ModelSummary; backend: BackendInfo }
  | { type: "data"; data: DataSummaryMessage }
  | { type: "started"; totalSteps: number; startStep: number; trainableParams: number; backend: BackendInfo }
  | StepMessage
  /** The run stopped at the page's request after `step` steps; `resume` continues it. */
  | { type: "stopped"; step: number; totalSteps: number }
  | { type: "done"; step: number; seconds: number; finalLoss: number | null }
  | { type: "generation"; tag: string; adapter: "trained" | "loaded" | null; results: GenerationResult[] }
  /** adapter_config.json and adapter_model.safetensors, PEFT's names. */
  | { type: "adapter"; files: FileMap }
  | { type: "adapter-loaded"; r: number; targets: string[]; tensors: number }
  /** `during`: the request that failed ("load-model", "train", ...). */
  | { type: "error"; during: ToWorker["type"]; message: string };

/** The page's defaults: the CLI's (TRAIN_DEFAULTS), with steps and a short max length for a tab. */
export const WEB_DEFAULTS: WebTrainSettings = {
  r: 8,
  alpha: 16,
  dropout: 0.05,
  targets: "",
  lr: 2e-4,
  steps: 100,
  maxLength: 512,
  batchSize: 4,
  seed: 0,
  schedule: "linear",
  warmupSteps: 0,
};

/** Where `lora-ts web` serves the model the page offers as its default, and where the page fetches it. */
export const DEFAULT_MODEL_URL = "/models/default/";

/**
 * The files of a model folder the page reads (and `lora-ts web` serves): the rest of a folder (a
 * README, images, .git) is neither read nor served.
 */
export function isModelFileName(name: string): boolean {
  return (
    [
      "config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "generation_config.json",
      "special_tokens_map.json",
      "model.safetensors.index.json",
    ].includes(name) || name.endsWith(".safetensors")
  );
}
