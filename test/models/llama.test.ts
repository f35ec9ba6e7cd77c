/**
 * The Llama-family graph (Llama, Mistral-style GQA, Qwen2 biases, llama3 rope scaling) against an
 * independent float64 loop implementation of HF's LlamaForCausalLM, plus KV-cache and padding
 * equivalences on the engine itself.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { llama2cHfConfig, readLlama2cCheckpoint } from "../../src/io/llama2c.js";
import { expectedTensors, parseModelConfig } from "../../src/models/family.js";
import type { ForwardRunner } from "../../src/models/index.js";
import { loadForward } from "../../src/models/open-model.js";
import { sharedPath } from "../helpers/shared.js";
import {
  llamaConfig,
  logitsRow,
  maxAbsDiff,
  randomWeights,
  tempDir,
  type Weights,
  writeModelDir,
} from "./fixtures.js";

// ---------------------------------------------------------------- reference (float64 loops)

type Vec = Float64Array;

function matVec(w: Float32Array, rows: number, cols: number, x: Vec, bias?: Float32Array): Vec {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = bias ? bias[r]! : 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

/** HF's llama3 frequency adjustment, written out again from the transformers source's formula. */
function refInvFreq(c: Record<string, unknown>, dim: number): number[] {
  const base = (c["rope_theta"] as number) ?? 10000;
  const inv: number[] = [];
  for (let i = 0; i < dim; i += 2) inv.push(1 / base ** (i / dim));
  const rs = c["rope_scaling"] as Record<string, number> | undefined;
  if (!rs) return inv;
  const factor = rs["factor"]!;
  const low = rs["low_freq_factor"]!;
  const high = rs["high_freq_factor"]!;
  const old = rs["original_max_position_embeddings"]!;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    let g = wavelen > old / low ? f / factor : f;
    const smooth = (old / wavelen - low) / (high - low);
    const smoothed = ((1 - smooth) * g) / factor + smooth * g;
    const isMedium = !(wavelen < old / high) && !(wavelen > old / low);
    if (isMedium) g = smoothed;
    return g;
  });
}

function applyRope(x: Vec, off: number, d: number, pos: number, inv: number[]): void {
  const half = d / 2;
  const src = x.slice(off, off + d);
  for (let i = 0; i < d; i++) {
    const ang = pos * inv[i % half]!;
    const rot = i < half ? -src[i + half]! : src[i - half]!;
    x[off + i] = src[i]! * Math.cos(ang) + rot * Math.sin(ang);
  }
}

/** Logits [seq][vocab] of one sequence, HF LlamaForCausalLM semantics, in float64. */
export function llamaReference(c: Record<string, unknown>, W: Weights, ids: number[], positions?: number[]) {
  const H = c["hidden_size"] as number;
  const nh = c["num_attention_heads"] as number;
  const nkv = (c["num_key_value_heads"] as number) ?? nh;
  const d = H / nh;
  const I = c["intermediate_size"] as number;
  const V = c["vocab_size"] as number;
  const eps = c["rms_norm_eps"] as number;
  const qwen = c["model_type"] === "qwen2";
  const w = (n: string) => W.get(n)!.data;
  const wOpt = (n: string) => (qwen ? W.get(n)?.data : undefined);
  const inv = refInvFreq(c, d);
  const T = ids.length;
  const pos = positions ?? ids.map((_, i) => i);
  let xs: Vec[] = ids.map((id) =>
    Float64Array.from(w("model.embed_tokens.weight").subarray(id * H, id * H + H)),
  );
  for (let l = 0; l < (c["num_hidden_layers"] as number); l++) {
    const p = `model.layers.${l}`;
    const qs: Vec[] = [];
    const ks: Vec[] = [];
    const vs: Vec[] = [];
    for (let t = 0; t < T; t++) {
      const n = rmsNorm(xs[t]!, w(`${p}.input_layernorm.weight`), eps);
      const q = matVec(w(`${p}.self_attn.q_proj.weight`), nh * d, H, n, wOpt(`${p}.self_attn.q_proj.bias`));
      const k = matVec(w(`${p}.self_attn.k_proj.weight`), nkv * d, H, n, wOpt(`${p}.self_attn.k_proj.bias`));
      const v = matVec(w(`${p}.self_attn.v_proj.weight`), nkv * d, H, n, wOpt(`${p}.self_attn.v_proj.bias`));
      for (let h = 0; h < nh; h++) applyRope(q, h * d, d, pos[t]!, inv);
      for (let h = 0; h < nkv; h++) applyRope(k, h * d, d, pos[t]!, inv);
      qs.push(q);
      ks.push(k);
      vs.push(v);
    }
    xs = xs.map((x, t) => {
      const att = new Float64Array(nh * d);
      for (let h = 0; h < nh; h++) {
        const kvh = Math.floor(h / (nh / nkv));
        const scores: number[] = [];
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let i = 0; i < d; i++) s += qs[t]![h * d + i]! * ks[j]![kvh * d + i]!;
          scores.push(s / Math.sqrt(d));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++)
          for (let i = 0; i < d; i++) att[h * d + i]! += (e[j]! / z) * vs[j]![kvh * d + i]!;
      }
      const o = matVec(w(`${p}.self_attn.o_proj.weight`), H, nh * d, att);
      const h1 = x.map((v, i) => v + o[i]!);
      const n2 = rmsNorm(h1, w(`${p}.post_attention_layernorm.weight`), eps);
      const gate = matVec(w(`${p}.mlp.gate_proj.weight`), I, H, n2);
      const up = matVec(w(`${p}.mlp.up_proj.weight`), I, H, n2);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = matVec(w(`${p}.mlp.down_proj.weight`), H, I, act);
      return h1.map((v, i) => v + down[i]!);
    });
  }
  const head = c["tie_word_embeddings"] ? w("model.embed_tokens.weight") : w("lm_head.weight");
  return xs.map((x) => Array.from(matVec(head, V, H, rmsNorm(x, w("model.norm.weight"), eps))));
}

// ---------------------------------------------------------------- fixtures

interface Case {
  name: string;
  config: Record<string, unknown>;
}

const CASES: Case[] = [
  { name: "llama (MHA, untied head)", config: llamaConfig() },
  {
    name: "mistral-style (GQA 4/2, untied head)",
    config: llamaConfig({
      architectures: ["MistralForCausalLM"],
      model_type: "mistral",
      num_key_value_heads: 2,
    }),
  },
  {
    name: "qwen2 (q/k/v biases, GQA 4/1, tied head)",
    config: llamaConfig({
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      num_key_value_heads: 1,
      tie_word_embeddings: true,
      rope_theta: 1000000,
    }),
  },
  {
    // head_dim 16 with theta 1e4 and original context 64 puts frequencies in all three llama3
    // bands (wavelengths 6.3 < 16, 19.9 and 62.8 between, >= 199 above 64).
    name: "SmolLM-style llama with llama3 rope_scaling (tied, GQA 2/1)",
    config: llamaConfig({
      hidden_size: 32,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      tie_word_embeddings: true,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
    }),
  },
];

function makeModel(config: Record<string, unknown>, seed: number): { dir: string; weights: Weights } {
  const cfg = parseModelConfig(config, "config.json");
  const shapes = expectedTensors(cfg);
  if (cfg.tieWordEmbeddings) shapes.delete("lm_head.weight");
  const weights = randomWeights(shapes, seed);
  return { dir: writeModelDir(join(tempDir(), "model"), config, weights), weights };
}

const IDS = [3, 17, 5, 42, 0, 9, 33, 21];

for (const [i, c] of CASES.entries()) {
  test(`${c.name}: logits match the float64 reference`, async () => {
    const { dir, weights } = makeModel(c.config, 10 + i);
    const rope = c.config["rope_scaling"] !== undefined;
    const runner = await loadForward(dir, { positions: rope });
    try {
      // With rope scaling, positions far from 0 make the scaled low frequencies matter.
      const positions = rope ? IDS.map((_, t) => 40 + 7 * t) : undefined;
      const { logits } = await runner.run({ ids: [IDS], positions: positions ? [positions] : undefined });
      assert.deepEqual(logits.dims, [1, IDS.length, c.config["vocab_size"]]);
      const ref = llamaReference(c.config, weights, IDS, positions);
      let err = 0;
      for (let t = 0; t < IDS.length; t++) err = Math.max(err, maxAbsDiff(logitsRow(logits, 0, t), ref[t]!));
      assert.ok(err < 1e-4, `max |logits - reference| = ${err}`);
      if (rope) {
        // The scaling must matter here, or this case would not test it.
        const plain = { ...c.config, rope_scaling: undefined };
        const unscaled = llamaReference(plain, weights, IDS, positions);
        assert.ok(maxAbsDiff(unscaled.flat(), ref.flat()) > 1e-2, "llama3 scaling made no difference");
      }
    } finally {
      await runner.close();
    }
  });
}

// ---------------------------------------------------------------- KV cache and padding

const GQA = CASES[1]!.config;

async function fullLogits(runner: ForwardRunner, ids: number[]): Promise<number[][]> {
  const { logits } = await runner.run({ ids: [ids] });
  return ids.map((_, t) => logitsRow(logits, 0, t));
}

/** Prefill `k` tokens, then one token at a time feeding the cache back; logits per position. */
export async function cachedLogits(runner: ForwardRunner, ids: number[], k: number): Promise<number[][]> {
  const out: number[][] = [];
  let r = await runner.run({ ids: [ids.slice(0, k)] });
  for (let t = 0; t < k; t++) out.push(logitsRow(r.logits, 0, t));
  for (let t = k; t < ids.length; t++) {
    r = await runner.run({ ids: [[ids[t]!]], past: r.present! });
    assert.deepEqual(r.present![0]!.key.dims.slice(2), [t + 1, runner.config.headDim]);
    out.push(logitsRow(r.logits, 0, 0));
  }
  return out;
}

test("KV cache: prefill + one-token steps give the full pass's logits (GQA)", async () => {
  const { dir } = makeModel(GQA, 21);
  const full = await loadForward(dir);
  const cached = await loadForward(dir, { kvCache: true });
  try {
    const want = await fullLogits(full, IDS);
    for (const k of [1, 3]) {
      const got = await cachedLogits(cached, IDS, k);
      assert.ok(maxAbsDiff(got.flat(), want.flat()) < 1e-4, `prefill ${k}`);
    }
  } finally {
    await full.close();
    await cached.close();
  }
});

/** Left-pads rows to one length; returns ids and the attention mask. */
export function leftPad(rows: number[][], padId = 0): { ids: number[][]; mask: number[][] } {
  const n = Math.max(...rows.map((r) => r.length));
  const ids = rows.map((r) => [...Array(n - r.length).fill(padId), ...r]);
  const mask = rows.map((r) => [...Array(n - r.length).fill(0), ...r.map(() => 1)]);
  return { ids, mask };
}

test("left-padded batch with attention mask matches unpadded runs", async () => {
  const { dir } = makeModel(GQA, 22);
  const single = await loadForward(dir);
  const padded = await loadForward(dir, { attentionMask: true });
  try {
    const rows = [IDS, [7, 8, 9], IDS.slice(2)];
    const { ids, mask } = leftPad(rows);
    const { logits } = await padded.run({ ids: [...ids], attentionMask: mask });
    assert.ok([...(logits.data as Float32Array)].every(Number.isFinite), "NaN/Inf in padded logits");
    for (const [b, row] of rows.entries()) {
      const want = await fullLogits(single, row);
      const off = ids[b]!.length - row.length;
      const got = row.map((_, t) => logitsRow(logits, b, off + t));
      assert.ok(maxAbsDiff(got.flat(), want.flat()) < 1e-4, `row ${b}`);
    }
  } finally {
    await single.close();
    await padded.close();
  }
});

test("KV cache with a left-padded batch: masked decode steps match unpadded runs", async () => {
  const { dir } = makeModel(GQA, 23);
  const single = await loadForward(dir);
  const cached = await loadForward(dir, { kvCache: true, attentionMask: true });
  try {
    const rows = [IDS, IDS.slice(3)];
    const prompt = leftPad(rows.map((r) => r.slice(0, r.length - 2)));
    let mask = prompt.mask;
    let r = await cached.run({ ids: prompt.ids, attentionMask: mask });
    const steps: number[][][] = rows.map(() => []);
    for (let s = 2; s >= 1; s--) {
      const next = rows.map((row) => [row[row.length - s]!]);
      mask = mask.map((m) => [...m, 1]);
      r = await cached.run({ ids: next, attentionMask: mask, past: r.present! });
      for (const b of rows.keys()) steps[b]!.push(logitsRow(r.logits, b, 0));
    }
    for (const [b, row] of rows.entries()) {
      const want = (await fullLogits(single, row)).slice(-2);
      assert.ok(maxAbsDiff(steps[b]!.flat(), want.flat()) < 1e-4, `row ${b}`);
    }
  } finally {
    await single.close();
    await cached.close();
  }
});

// ---------------------------------------------------------------- a real model

const STORIES = sharedPath("models", "stories260K");

test("stories260K (real Llama-2 model, ../shared): logits and 200-token greedy story match", async (t) => {
  if (!existsSync(join(STORIES, "reference.json"))) {
    t.skip(`${STORIES} is absent (reference material, not part of the repository)`);
    return;
  }
  const ref = JSON.parse(readFileSync(join(STORIES, "reference.json"), "utf8")) as {
    greedy_from_bos_200: number[];
    logits_after_first_16_tokens: number[];
  };
  const ckpt = readLlama2cCheckpoint(join(STORIES, "stories260K.bin"));
  const dir = writeModelDir(join(tempDir(), "stories"), llama2cHfConfig(ckpt.config), ckpt.tensors);
  const runner = await loadForward(dir, { kvCache: true });
  try {
    const first16 = [1, ...ref.greedy_from_bos_200.slice(0, 15)];
    const { logits } = await runner.run({ ids: [first16] });
    const err = maxAbsDiff(logitsRow(logits, 0, 15), ref.logits_after_first_16_tokens);
    assert.ok(err < 2e-4, `max |logits - reference| = ${err}`);
    const out: number[] = [];
    let r = await runner.run({ ids: [[1]] });
    for (let i = 0; i < 200; i++) {
      const row = logitsRow(r.logits, 0, r.logits.dims[1]! - 1);
      const next = row.indexOf(Math.max(...row));
      out.push(next);
      r = await runner.run({ ids: [[next]], past: r.present! });
    }
    assert.deepEqual(out, ref.greedy_from_bos_200);
  } finally {
    await runner.close();
  }
});
