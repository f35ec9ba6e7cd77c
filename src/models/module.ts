/**
 * How model code asks for its layers. Model families (llama.ts, gpt2.ts) never touch weights
 * directly: they call `ctx.linear(x, spec)` / `ctx.embedding(ids, path)` / `ctx.param(name)` with the
 * PyTorch module path of the layer (e.g. "model.layers.0.self_attn.q_proj"). The base context
 * reads frozen weights; the LoRA context (src/lora/) wraps chosen layers by path with an adapter.
 */
import type { Graph, Value } from "../graph/ir.js";

export interface LinearSpec {
  /** PyTorch module path, without ".weight". */
  path: string;
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  /** GPT-2's Conv1D stores its weight [in, out] instead of [out, in]. */
  fanInFanOut?: boolean;
}

export interface ModuleContext {
  readonly graph: Graph;
  /** A frozen base tensor by checkpoint name (canonical, e.g. "model.norm.weight"), as float32. */
  param(name: string): Value;
  /** y = x·Wᵀ + b for the layer at `spec.path` (Conv1D: y = x·W + b). */
  linear(x: Value, spec: LinearSpec): Value;
  /** Rows of the embedding table at `path` ("<path>.weight" is [vocab, dim]). */
  embedding(ids: Value, path: string): Value;
}

/** An adaptable layer of a model, as listModules (modules.ts) finds it. */
export interface ModuleInfo {
  path: string;
  kind: "linear" | "embedding";
  /** Linear: in features; embedding: vocabulary size. */
  inFeatures: number;
  /** Linear: out features; embedding: embedding dim. */
  outFeatures: number;
  fanInFanOut?: boolean;
  /** The output head (lm_head), which "all-linear" leaves out. */
  isOutputHead?: boolean;
  /** Whether the base layer has a bias. */
  bias?: boolean;
}
