/**
 * Tiny random Hugging Face model folders for tests: a config.json and weights written with
 * writeSafetensors, optionally as bf16 or split into shards with an index. Weights are kept in
 * memory too (float32, HF names) so tests can run their own reference implementations on them.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { f32ToBf16 } from "../../src/graph/half.js";
import type { TensorValue } from "../../src/graph/runtime.js";
import { writeSafetensors } from "../../src/io/safetensors.js";
import { randn, rng } from "../graph/gradcheck.js";

export interface Tensor {
  shape: number[];
  data: Float32Array;
}
export type Weights = Map<string, Tensor>;

const made: string[] = [];
process.on("exit", () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the test process exits. */
export function tempDir(prefix = "lora-ts-model-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** A small Llama-family config.json; `over` replaces or adds fields. */
export function llamaConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 48,
    hidden_size: 32,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 128,
    hidden_act: "silu",
    tie_word_embeddings: false,
    torch_dtype: "float32",
    bos_token_id: 1,
    eos_token_id: 2,
    ...over,
  };
}

export function gpt2Config(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: 50,
    n_embd: 24,
    n_layer: 2,
    n_head: 3,
    n_positions: 64,
    n_inner: null,
    activation_function: "gelu_new",
    layer_norm_epsilon: 1e-5,
    bos_token_id: 49,
    eos_token_id: 49,
    ...over,
  };
}

/**
 * Random weights for the given name -> shape map: norm scales near 1, biases and matrices small,
 * so activations stay O(1) through a couple of layers.
 */
export function randomWeights(shapes: Map<string, number[]>, seed: number): Weights {
  const rand = rng(seed);
  const out: Weights = new Map();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const z = randn(rand, n);
    const isNormScale = /(norm|ln_\d|ln_f)\.weight$/.test(name);
    const isBias = name.endsWith(".bias");
    const isTable = /(embed_tokens|wte|wpe)\.weight$/.test(name);
    const scale = isNormScale ? 0.1 : isBias ? 0.1 : isTable ? 0.5 : 0.25;
    const data = Float32Array.from(z, (v) => (isNormScale ? 1 : 0) + scale * v);
    out.set(name, { shape, data });
  }
  return out;
}

export interface WriteOptions {
  dtype?: "float32" | "bfloat16";
  /** Split the tensors over this many shard files with model.safetensors.index.json. */
  shards?: number;
  /** Renames tensors on disk (e.g. GPT-2's hub checkpoint drops "transformer."). */
  rename?: (name: string) => string;
  /** Leaves tensors out of the file. */
  omit?: string[];
}

/** Writes config.json and the weights into `dir` (created if needed); returns `dir`. */
export function writeModelDir(
  dir: string,
  config: Record<string, unknown>,
  weights: Weights,
  opts: WriteOptions = {},
): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  const list = [...weights]
    .filter(([name]) => !opts.omit?.includes(name))
    .map(([name, t]) => {
      const stored = opts.rename ? opts.rename(name) : name;
      return opts.dtype === "bfloat16"
        ? { name: stored, dtype: "bfloat16" as const, shape: t.shape, data: f32ToBf16(t.data) }
        : { name: stored, dtype: "float32" as const, shape: t.shape, data: t.data };
    });
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    writeSafetensors(join(dir, "model.safetensors"), list);
    return dir;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${pad5(s + 1)}-of-${pad5(shards)}.safetensors`;
    const part = list.filter((_, i) => i % shards === s);
    for (const t of part) weightMap[t.name] = file;
    writeSafetensors(join(dir, file), part);
  }
  const index = { metadata: { total_size: 0 }, weight_map: weightMap };
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(index, null, 2));
  return dir;
}

function pad5(n: number): string {
  return String(n).padStart(5, "0");
}

/** Max |a - b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Row `t` of batch `b` of a [batch, seq, vocab] logits tensor. */
export function logitsRow(logits: TensorValue, b: number, t: number): number[] {
  const [, seq, vocab] = logits.dims as [number, number, number];
  const start = (b * seq + t) * vocab;
  const data = logits.data as Float32Array;
  return Array.from({ length: vocab }, (_, v) => data[start + v]!);
}
