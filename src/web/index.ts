/**
 * lora-ts in a browser: the library's browser entry (bundled with onnxruntime-web in place of
 * onnxruntime-node; see scripts/build-web.mjs). A model opened from files in memory, a training run
 * that steps like `lora-ts train`, greedy answers, and adapters as PEFT's two files.
 */

export { bytesSource } from "../io/byte-source.js";
export { type Adapter, adapterFileBytes, parseAdapter } from "../lora/adapter.js";
export { greedyAnswers } from "./answers.js";
export { openModelFiles, type WebModel } from "./model-files.js";
export * from "./protocol.js";
export { TrainingRun } from "./training-run.js";
