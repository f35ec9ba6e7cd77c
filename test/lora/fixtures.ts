/** Module lists of small Llama and GPT-2 models, as the model code reports them, for the LoRA tests. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import type { ModuleInfo } from "../../src/lora/targets.js";
import { Rng } from "../../src/util/rng.js";

/** Every linear layer of a Llama block plus the token embedding: LoRA's widest target list. */
export const LLAMA_ALL_TARGETS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
  "embed_tokens",
];

/** Llama: hidden 64, 4 KV heads of 8 (k/v out 32), intermediate 172, vocab 512, 2 layers. */
export function llamaModules(layers = 2): ModuleInfo[] {
  const h = 64;
  const kv = 32;
  const ff = 172;
  const out: ModuleInfo[] = [
    { path: "model.embed_tokens", kind: "embedding", inFeatures: 512, outFeatures: h },
  ];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      { path: `${p}.self_attn.q_proj`, kind: "linear", inFeatures: h, outFeatures: h },
      { path: `${p}.self_attn.k_proj`, kind: "linear", inFeatures: h, outFeatures: kv },
      { path: `${p}.self_attn.v_proj`, kind: "linear", inFeatures: h, outFeatures: kv },
      { path: `${p}.self_attn.o_proj`, kind: "linear", inFeatures: h, outFeatures: h },
      { path: `${p}.mlp.gate_proj`, kind: "linear", inFeatures: h, outFeatures: ff },
      { path: `${p}.mlp.up_proj`, kind: "linear", inFeatures: h, outFeatures: ff },
      { path: `${p}.mlp.down_proj`, kind: "linear", inFeatures: ff, outFeatures: h },
    );
  }
  out.push({ path: "lm_head", kind: "linear", inFeatures: h, outFeatures: 512, isOutputHead: true });
  return out;
}

/** GPT-2: n_embd 48, vocab 100, 2 layers; Conv1D layers store [in, out]. */
export function gpt2Modules(layers = 2): ModuleInfo[] {
  const d = 48;
  const out: ModuleInfo[] = [
    { path: "transformer.wte", kind: "embedding", inFeatures: 100, outFeatures: d },
    { path: "transformer.wpe", kind: "embedding", inFeatures: 64, outFeatures: d },
  ];
  for (let i = 0; i < layers; i++) {
    const p = `transformer.h.${i}`;
    out.push(
      { path: `${p}.attn.c_attn`, kind: "linear", inFeatures: d, outFeatures: 3 * d, fanInFanOut: true },
      { path: `${p}.attn.c_proj`, kind: "linear", inFeatures: d, outFeatures: d, fanInFanOut: true },
      { path: `${p}.mlp.c_fc`, kind: "linear", inFeatures: d, outFeatures: 4 * d, fanInFanOut: true },
      { path: `${p}.mlp.c_proj`, kind: "linear", inFeatures: 4 * d, outFeatures: d, fanInFanOut: true },
    );
  }
  out.push({ path: "lm_head", kind: "linear", inFeatures: d, outFeatures: 100, isOutputHead: true });
  return out;
}

/** A temporary directory removed after the test file. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `lora-ts-${prefix}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal(0, scale);
  return a;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
