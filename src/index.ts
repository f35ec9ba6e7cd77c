/**
 * lora-ts, the library. The high-level API trains, serves and merges LoRA adapters on Hugging Face
 * models; the engine underneath (graph builder, autodiff, ONNX emission, onnxruntime sessions) is
 * exported too, for building other models.
 */

// ---- models, generation, training, adapters
export { Tokenizer } from "./data/tokenizer.js";
export { BatchEngine, type BatchEngineOptions } from "./infer/batch-engine.js";
/** Loads a Hugging Face model folder (or .gguf file), optionally with named LoRA adapters. */
export { CausalLM, CausalLM as Model, type LoadOptions } from "./infer/causal-lm.js";
export {
  EngineError,
  type EngineErrorKind,
  type GenerationEngine,
  type GenRequest,
  type GenResult,
  type MixPart,
  type TokenEvent,
} from "./infer/engine-types.js";
export { type GenerateOptions, generate } from "./infer/generate.js";
export { hubSnapshot } from "./io/hub.js";
export type { Adapter } from "./lora/adapter.js";
export { loadAdapter, saveAdapter } from "./lora/adapter-files.js";
/** A folder, hub id or GGUF adapter as a PEFT adapter folder (a GGUF adapter needs the base's folder). */
export { resolveAdapterPath } from "./lora/adapter-path.js";
export { type LoraConfig, makeLoraConfig, parseLoraConfig } from "./lora/config.js";
export { type ExportGgufModelOptions, exportGgufModel } from "./lora/export-gguf.js";
export { type ExportGgufAdapterOptions, exportGgufAdapter } from "./lora/export-gguf-adapter.js";
/** mergeModule: one module's merged weight, LoRA or DoRA (mergeInto/unmerge are W ± ΔW, LoRA only). */
export { combineAdapters, deltaWeight, mergeInto, mergeModule, unmerge } from "./lora/merge.js";
export { type MergeOptions, mergeModel as merge } from "./lora/merge-model.js";
export { countParams, selectTargets } from "./lora/targets.js";
export type { ModelConfig } from "./models/config.js";
export { convertGguf } from "./models/convert-gguf.js";
export { convertLlama2c } from "./models/convert-llama2c.js";
/** The embedded default model folder (models/default). */
export { DEFAULT_MODEL_DIR } from "./models/default-model.js";
export { FAMILIES, familyOf, type ModelFamily } from "./models/family.js";
export { listModules } from "./models/modules.js";
export { type HfModel, openModelDir } from "./models/open-model.js";
export { evaluate } from "./train/evaluate.js";
export type { TrainerEvents, TrainSummary } from "./train/events.js";
export { TrainingInterrupted } from "./train/interrupt.js";
export { checkTrainMemory, estimateTrainMemory } from "./train/memory-estimate.js";
export { progressReporter } from "./train/progress.js";
export { reportEvents } from "./train/report.js";
export { type TrainOptions, train } from "./train/trainer.js";

import type { CausalLM, LoadOptions } from "./infer/causal-lm.js";
import { loadCausalLM } from "./infer/load-causal-lm.js";
export function loadModel(dir: string, opts: LoadOptions = {}): Promise<CausalLM> {
  return loadCausalLM(dir, opts);
}

// ---- the engine
export type { AnyTypedArray, DType } from "./graph/dtype.js";
export { emitModel } from "./graph/emit.js";
export { grad } from "./graph/grad.js";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from "./graph/half.js";
export { Graph, Value } from "./graph/ir.js";
export * as nn from "./graph/nn.js";
export * as ops from "./graph/ops.js";
export { Session, type SessionOptions, type TensorValue } from "./graph/runtime.js";
export { openSafetensors, SafetensorsFile, writeSafetensors } from "./io/safetensors.js";
export { FileFormatError, GraphBuildError, LoraTsError } from "./util/errors.js";
