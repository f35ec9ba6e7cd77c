/**
 * The peak memory (resident set) of a training run, estimated from the model config and the run's
 * settings before anything is built, so that a run that cannot fit is refused with a message that
 * says what to lower instead of being killed by the kernel minutes later.
 *
 * Each part below is a size computed from the shapes (what the step keeps alive), times a factor
 * fitted to measured peak RSS of real training runs (`train()` on full-length rows, peak after
 * several steps): tiny random Llama and GPT-2 models, the default model, and the benchmark's
 * GPT-2-small and SmolLM-135M at 4×256, float32, --base-int8 and --mode full (bench/memory.ts,
 * bench/RESULTS.md "Memory estimate"). The factors hold onnxruntime's allocator overhead (its arena
 * keeps blocks of every size it has used) and the garbage the JavaScript side leaves between steps.
 */
import { availableParallelism } from "node:os";
import type { TrainedBias } from "../lora/bias.js";
import { doraParamCount } from "../lora/dora.js";
import { loraParamCount } from "../lora/layer.js";
import type { SelectedModule } from "../lora/targets.js";
import type { ModelConfig } from "../models/config.js";
import { expectedTensors, tiedWeights } from "../models/family.js";
import { listModules } from "../models/modules.js";
import { LoraTsError } from "../util/errors.js";

export interface TrainMemoryInput {
  config: ModelConfig;
  /** Rows per micro-batch (--batch-size). */
  batch: number;
  /**
   * Tokens per row at most: a batch is padded to its longest row, so the data's longest example
   * (at most --max-length) bounds every batch.
   */
  seq: number;
  /** The --max-length setting, named in the refusal when it differs from `seq` (default: `seq`). */
  maxLength?: number;
  mode: "lora" | "full";
  /** LoRA: the adapted modules (r, in, out). */
  selected?: readonly SelectedModule[];
  /** LoRA: biases trained too (PEFT bias "all" / "lora_only"). */
  biases?: readonly TrainedBias[];
  /** LoRA dropout rate: above 0, a keep mask per adapted input is drawn and fed every step. */
  dropout?: number;
  /** LoRA: DoRA (use_dora), with a trained magnitude per output and more held activations. */
  dora?: boolean;
  /** --base-int8: the frozen linear weights as int8. */
  int8?: boolean;
  /** The unfused loss: full [tokens, vocab] logits (the plain path, or an adapted lm_head). */
  plainLoss?: boolean;
  /** onnxruntime intra-op threads (default: every core, as the session's). */
  threads?: number;
  /**
   * --gradient-checkpointing: each layer keeps only its input through the forward pass and is
   * recomputed in the backward pass, so one layer's activations are alive at a time.
   */
  gradientCheckpointing?: boolean;
}

/** Bytes of each part of the estimate. */
export interface MemoryParts {
  /** The base model's weights as the step holds them (float32; int8 copies with --base-int8). */
  weights: number;
  /** Trainable tensors, their gradients and AdamW's two moments (JavaScript and onnxruntime copies). */
  optimizer: number;
  /** Activations kept for the backward pass, all layers, and the dropout masks. */
  activations: number;
  /** The [batch, heads, seq, seq] attention probabilities. */
  attention: number;
  /** The output head's [tokens, vocab] logits and softmax in the loss. */
  head: number;
  /** Node.js, onnxruntime, the tokenizer and the graph: the same for every run. */
  runtime: number;
}

export interface TrainMemoryEstimate {
  bytes: number;
  parts: MemoryParts;
  input: TrainMemoryInput;
  /** The sizes it was computed from (the same for any batch size and length). */
  terms: MemoryTerms;
}

/**
 * The model's and the setup's sizes before the fitted factors, per token where they scale with the
 * tokens: what `estimateTrainMemory` multiplies by the batch shape and the factors.
 */
export interface MemoryTerms {
  /** Parameters of the checkpoint (a tied head counted once). */
  params: number;
  /** Of which in the layers' linear weights (what --base-int8 quantizes; not the head). */
  linearParams: number;
  /** Trained: the adapter (and trained biases), or every parameter in full mode. */
  trainableParams: number;
  /** Floats per token kept for the backward pass, summed over the layers. */
  savedPerToken: number;
  /** Dropout-mask bytes per token fed each step (uint8 per adapted input feature). */
  maskBytesPerToken: number;
  /** Whether the loss takes the whole [tokens, vocab] logits (else chunks of tokens). */
  wholeHead: boolean;
}

/**
 * The factors, fitted by least squares on the relative error over 36 measured runs (bench/RESULTS.md,
 * "Memory estimate": every run within 12% after the fit; the benchmark's 8×512 runs, left out of
 * the fit, within 14%). Each comment says what the factor stands for.
 */
export const MEMORY_FACTORS = {
  /**
   * Node.js with onnxruntime loaded, the tokenizer, the data and the graph, bytes. (A process that has
   * built the session and run nothing yet holds about 110 MiB.)
   */
  runtime: 114 * 2 ** 20,
  /**
   * Per onnxruntime thread (its stack, MLAS's per-thread buffers), bytes: 1 and 2 threads measured
   * within 8 MiB of each other, under the run-to-run noise.
   */
  perThread: 4 * 2 ** 20,
  /**
   * Bytes per int8 weight parameter beyond Q and Qᵀ (2 bytes): float32 reads left as garbage while
   * the weights are quantized, and DynamicQuantizeMatMul's buffers. Set from the benchmark models
   * (int8 peaks at float32's peak less 4 bytes per quantized parameter plus 2.6–4.5), not by the
   * fit: on the small models the int8 difference is under the run-to-run noise.
   */
  int8Extra: 1.3,
  /**
   * Float32 copies of each trainable parameter beyond its value: AdamW's m and v, onnxruntime's
   * gradient output, its JavaScript copy, the accumulated sum, and part of the previous steps'
   * gradients and sums, not yet collected.
   */
  optimizerCopies: 6.2,
  /** Held activations (memoryTerms' savedPerToken), with onnxruntime's arena blocks around them. */
  activations: 1.2,
  /** Dropout masks: the step's own, and earlier steps' not yet collected. */
  masks: 4,
  /**
   * [batch, heads, seq, seq] tensors alive at once in one layer's attention: scores and
   * probabilities, and in the backward pass the recomputed probabilities and their gradients.
   */
  attentionTransient: 4.7,
  /**
   * Per layer, [batch, heads, seq, seq] tensors held across layers: the recomputed probabilities
   * could be run ahead of their layer's backward pass, but the fit finds little of that.
   */
  attentionPerLayer: 0.16,
  /**
   * Frozen head, chunked over tokens (nn.frozenHeadCrossEntropy): the share of the full [tokens,
   * vocab] logits alive at the peak. More than one chunk's blocks: the arena keeps them.
   */
  chunkedHead: 0.9,
  /** Trained or unfused head: logits, softmax (kept for the backward pass) and its gradient, whole. */
  fullHead: 2.4,
};

/** The sizes of a run before the factors. */
export function memoryTerms(input: TrainMemoryInput): MemoryTerms {
  const cfg = input.config;
  const tied = tiedWeights(cfg);
  let params = 0;
  for (const [name, shape] of expectedTensors(cfg)) {
    if (!tied.has(name)) params += shape.reduce((a, b) => a * b, 1);
  }
  const layerLinears = listModules(cfg).filter((m) => m.kind === "linear" && !m.isOutputHead);
  const linearParams = layerLinears.reduce((n, m) => n + m.inFeatures * m.outFeatures, 0);
  const selected = input.mode === "lora" ? (input.selected ?? []) : [];
  const adapterParams = selected.reduce(
    (n, m) => n + (input.dora ? doraParamCount(m.r, m.in, m.out) : loraParamCount(m.r, m.in, m.out)),
    0,
  );
  const biasParams = (input.biases ?? []).reduce((n, b) => n + b.size, 0);
  const trainableParams = input.mode === "full" ? params : adapterParams + biasParams;

  // What the backward pass holds per token, as counted on the training graphs of both families
  // (forward values read by nodes that depend on the loss gradient): each linear layer's output
  // (queries, keys, values, MLP hidden: inputs of the next ops' gradients) and the residual stream,
  // once per layer. Values the backward pass computes from forward values alone count too, since
  // onnxruntime may run them as soon as their inputs exist: a gated MLP's SwiGLU factors (one more
  // [tokens, intermediate] than its two products leave) and each adapted layer's dropout factor.
  // Then the inputs of trained products, for their weight gradients: each adapted layer's input
  // (LoRA), or in full mode every linear layer's input. This count was within 3% (LoRA) and 6%
  // (full) of the graphs' on GPT-2-small, SmolLM-135M and the default model, when LoRA kept a dropped
  // input and its dropout factor per adapted layer (2 per input element, since made 1).
  const adaptedLinears = selected.filter((m) => m.kind === "linear" && m.path !== "lm_head");
  const adaptedIn = adaptedLinears.reduce((n, m) => n + m.in, 0);
  const outs = layerLinears.reduce((n, m) => n + m.outFeatures, 0);
  const mlpHidden = layerLinears.filter((m) => m.outFeatures === cfg.intermediate).length;
  const gatedExtra = Math.max(0, mlpHidden - cfg.layers) * cfg.intermediate;
  // LoRA keeps each adapted layer's input x once (A's gradient recomputes drop(x) from it: dropout.ts);
  // layers that share an input (q, k, v) count it once each here, on the safe side.
  const trainedInputs =
    input.mode === "full" ? layerLinears.reduce((n, m) => n + m.inFeatures, 0) : adaptedIn;
  // DoRA (lora/dora.ts) also keeps, per adapted layer, the unscaled output W·x + s·B·A·x (with
  // dropout W·drop(x) + s·B·A·drop(x)) for the magnitude's gradient. Counted from the graph's saved
  // values; bench:train --dora's RSS is within 2% of the estimate.
  const doraHeld = input.dora ? adaptedLinears.reduce((n, m) => n + m.out, 0) : 0;
  const allLayers = outs + cfg.layers * cfg.hidden + gatedExtra + trainedInputs + doraHeld;
  // Recomputed layers: every layer's input, plus one layer's activations twice over (its recomputed
  // forward values and the gradients computed from them).
  const savedPerToken = input.gradientCheckpointing
    ? cfg.layers * cfg.hidden + (2 * allLayers) / cfg.layers
    : allLayers;
  const maskBytesPerToken = (input.dropout ?? 0) > 0 ? adaptedIn : 0;
  // The head goes whole through the loss in full mode (its weight is trained), on the plain path and
  // when the head itself is adapted; otherwise in chunks of tokens.
  const wholeHead =
    input.mode === "full" || input.plainLoss === true || selected.some((m) => m.path === "lm_head");
  return { params, linearParams, trainableParams, savedPerToken, maskBytesPerToken, wholeHead };
}

/** Estimated peak resident memory of a training run (see the file comment). */
export function estimateTrainMemory(input: TrainMemoryInput): TrainMemoryEstimate {
  return estimateFrom(memoryTerms(input), input);
}

/** The estimate for `input` from its terms (`memoryTerms(input)`), without building anything. */
function estimateFrom(t: MemoryTerms, input: TrainMemoryInput): TrainMemoryEstimate {
  const f = MEMORY_FACTORS;
  const cfg = input.config;
  const int8 = input.mode === "lora" && input.int8 === true;
  const tokens = input.batch * input.seq;
  const attentionElements = input.batch * cfg.heads * input.seq * input.seq; // one layer's [B, H, T, T]
  const parts: MemoryParts = {
    // float32 in memory whatever the checkpoint stores: float32 files are mapped and every page is
    // read, bf16/fp16 ones are cast once at session start; full mode reads them into JavaScript.
    weights: int8 ? 4 * (t.params - t.linearParams) + (2 + f.int8Extra) * t.linearParams : 4 * t.params,
    optimizer:
      4 * f.optimizerCopies * t.trainableParams + (input.mode === "lora" ? 4 * t.trainableParams : 0),
    activations: f.activations * 4 * tokens * t.savedPerToken + f.masks * tokens * t.maskBytesPerToken,
    attention:
      (f.attentionTransient + f.attentionPerLayer * (input.gradientCheckpointing ? 1 : cfg.layers)) *
      4 *
      attentionElements,
    head: (t.wholeHead ? f.fullHead : f.chunkedHead) * 4 * tokens * cfg.vocabSize,
    runtime: f.runtime + f.perThread * (input.threads ?? availableParallelism()),
  };
  const bytes = Object.values(parts).reduce((a, b) => a + b, 0);
  return { bytes, parts, input, terms: t };
}

const GiB = 2 ** 30;
const gib = (b: number) => (b / GiB).toFixed(1);

/** "weights 0.1, optimizer 0.0, ...": each part in GiB. */
const partsText = (parts: MemoryParts) =>
  Object.entries(parts)
    .map(([k, v]) => `${k} ${gib(v)}`)
    .join(", ");

/**
 * Refuses a run whose estimate exceeds `available` bytes, with one line giving the estimate, its
 * parts and the settings to lower, each with the largest value that would fit (--base-int8 only
 * when it alone would make the run fit). `memoryCheck: false` skips the check (the CLI's
 * --no-memory-check), for when the estimate is wrong for a setup.
 */
/**
 * One line for the start of a run: the estimated peak, by part, against the memory available, e.g.
 * `memory: about 1.1 GiB (weights 0.0, optimizer 0.0, ...) of 20.6 GiB available`.
 */
export function describeMemory(estimate: TrainMemoryEstimate, available: number): string {
  return `about ${gib(estimate.bytes)} GiB (${partsText(estimate.parts)}) of ${gib(available)} GiB available`;
}

export function checkTrainMemory(
  estimate: TrainMemoryEstimate,
  available: number,
  opts: { memoryCheck?: boolean } = {},
): void {
  if (opts.memoryCheck === false || estimate.bytes <= available) return;
  const { input, parts, terms } = estimate;
  // Variants of this run from the same terms: no graph is built again.
  const bytesWith = (over: Partial<TrainMemoryInput>) => estimateFrom(terms, { ...input, ...over }).bytes;
  const fits = (over: Partial<TrainMemoryInput>) => bytesWith(over) <= available;
  const knobs: string[] = [];
  if (input.batch > 1)
    knobs.push(`--batch-size (${input.batch}${fitHint(input.batch, (b) => fits({ batch: b }))})`);
  if (input.seq > 1) {
    const hint = fitHint(input.seq, (s) => fits({ seq: s }));
    knobs.push(`--max-length (${input.maxLength ?? input.seq}${hint})`);
  }
  const others: string[] = [];
  // int8 weights save little of a peak that activations dominate: offered only when they make it fit.
  if (input.mode === "lora" && !input.int8 && fits({ int8: true })) others.push("use --base-int8");
  if (input.mode === "full") others.push("train an adapter with --mode lora");
  const what = partsText(parts);
  const lower = knobs.length > 0 ? `lower ${knobs.join(" or ")}` : "";
  const advice = [lower, ...others].filter((s) => s !== "").join(", or ");
  throw new LoraTsError(
    `train: this run needs about ${gib(estimate.bytes)} GiB (estimate: ${what}) but ${gib(available)} GiB ` +
      `is available${advice ? `; ${advice}` : ""} (--no-memory-check skips this check)`,
  );
}

/** "; N would fit": the largest value below `current` that fits, or "" when none does. */
function fitHint(current: number, fits: (v: number) => boolean): string {
  let lo = 0; // largest known to fit (0: none)
  let hi = current; // smallest known not to fit
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo > 0 ? `; ${lo} would fit` : "";
}
