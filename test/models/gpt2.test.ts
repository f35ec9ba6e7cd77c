/**
 * The GPT-2 graph against an independent float64 loop implementation of HF's GPT2LMHeadModel, on
 * a hub-style checkpoint (tensor names without "transformer."), plus KV-cache and padding checks.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { expectedTensors, parseModelConfig } from "../../src/models/family.js";
import type { ForwardRunner } from "../../src/models/index.js";
import { loadForward } from "../../src/models/open-model.js";
import {
  gpt2Config,
  logitsRow,
  maxAbsDiff,
  randomWeights,
  tempDir,
  type Weights,
  writeModelDir,
} from "./fixtures.js";

// ---------------------------------------------------------------- reference (float64 loops)

type Vec = Float64Array;

/** Conv1D: y = x·W + b with W stored [in, out]. */
function conv1d(w: Float32Array, b: Float32Array, nIn: number, nOut: number, x: Vec): Vec {
  const y = Float64Array.from(b);
  for (let i = 0; i < nIn; i++) for (let o = 0; o < nOut; o++) y[o]! += x[i]! * w[i * nOut + o]!;
  return y;
}

function layerNorm(x: Vec, w: Float32Array, b: Float32Array, eps: number): Vec {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * w[i]! + b[i]!);
}

const geluNew = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** Logits [seq][vocab] of one sequence, HF GPT2LMHeadModel semantics, in float64. */
function gpt2Reference(c: Record<string, unknown>, W: Weights, ids: number[], positions?: number[]) {
  const H = c["n_embd"] as number;
  const nh = c["n_head"] as number;
  const d = H / nh;
  const V = c["vocab_size"] as number;
  const eps = c["layer_norm_epsilon"] as number;
  const w = (n: string) => W.get(n)!.data;
  const pos = positions ?? ids.map((_, i) => i);
  let xs: Vec[] = ids.map((id, t) =>
    Float64Array.from(
      { length: H },
      (_, i) => w("transformer.wte.weight")[id * H + i]! + w("transformer.wpe.weight")[pos[t]! * H + i]!,
    ),
  );
  for (let l = 0; l < (c["n_layer"] as number); l++) {
    const p = `transformer.h.${l}`;
    const qkv = xs.map((x) =>
      conv1d(
        w(`${p}.attn.c_attn.weight`),
        w(`${p}.attn.c_attn.bias`),
        H,
        3 * H,
        layerNorm(x, w(`${p}.ln_1.weight`), w(`${p}.ln_1.bias`), eps),
      ),
    );
    xs = xs.map((x, t) => {
      const att = new Float64Array(H);
      for (let h = 0; h < nh; h++) {
        const scores: number[] = [];
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let i = 0; i < d; i++) s += qkv[t]![h * d + i]! * qkv[j]![H + h * d + i]!;
          scores.push(s / Math.sqrt(d));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++)
          for (let i = 0; i < d; i++) att[h * d + i]! += (e[j]! / z) * qkv[j]![2 * H + h * d + i]!;
      }
      const proj = conv1d(w(`${p}.attn.c_proj.weight`), w(`${p}.attn.c_proj.bias`), H, H, att);
      const h1 = x.map((v, i) => v + proj[i]!);
      const n2 = layerNorm(h1, w(`${p}.ln_2.weight`), w(`${p}.ln_2.bias`), eps);
      const fc = conv1d(w(`${p}.mlp.c_fc.weight`), w(`${p}.mlp.c_fc.bias`), H, 4 * H, n2).map(geluNew);
      const out = conv1d(w(`${p}.mlp.c_proj.weight`), w(`${p}.mlp.c_proj.bias`), 4 * H, H, fc);
      return h1.map((v, i) => v + out[i]!);
    });
  }
  const wte = w("transformer.wte.weight");
  return xs.map((x) => {
    const n = layerNorm(x, w("transformer.ln_f.weight"), w("transformer.ln_f.bias"), eps);
    return Array.from({ length: V }, (_, v) => n.reduce((s, xi, i) => s + xi * wte[v * H + i]!, 0));
  });
}

// ---------------------------------------------------------------- tests

const CONFIG = gpt2Config();
const IDS = [49, 3, 17, 5, 42, 0, 9, 33, 21];
const hubName = (n: string) => n.replace(/^transformer\./, "");

function makeModel(seed: number, rename?: (n: string) => string): { dir: string; weights: Weights } {
  const shapes = expectedTensors(parseModelConfig(CONFIG, "config.json"));
  shapes.delete("lm_head.weight"); // tied to wte
  const weights = randomWeights(shapes, seed);
  return { dir: writeModelDir(join(tempDir(), "gpt2"), CONFIG, weights, { rename }), weights };
}

test("gpt2 (hub names without 'transformer.'): logits match the float64 reference", async () => {
  const { dir, weights } = makeModel(1, hubName);
  const runner = await loadForward(dir, { positions: true });
  try {
    for (const positions of [IDS.map((_, t) => t), IDS.map((_, t) => 20 + 3 * t)]) {
      const { logits } = await runner.run({ ids: [IDS], positions: [positions] });
      assert.deepEqual(logits.dims, [1, IDS.length, 50]);
      const ref = gpt2Reference(CONFIG, weights, IDS, positions);
      const got = IDS.map((_, t) => logitsRow(logits, 0, t));
      const err = maxAbsDiff(got.flat(), ref.flat());
      assert.ok(err < 1e-4, `max |logits - reference| = ${err}`);
    }
  } finally {
    await runner.close();
  }
});

test("gpt2 with the 'transformer.' prefix stored loads the same", async () => {
  const a = makeModel(2);
  const b = writeModelDir(join(tempDir(), "gpt2-hub"), CONFIG, a.weights, { rename: hubName });
  const [ra, rb] = [await loadForward(a.dir), await loadForward(b)];
  try {
    const la = (await ra.run({ ids: [IDS] })).logits.data as Float32Array;
    const lb = (await rb.run({ ids: [IDS] })).logits.data as Float32Array;
    assert.deepEqual(la, lb);
    const ref = gpt2Reference(CONFIG, a.weights, IDS);
    assert.ok(maxAbsDiff(la, ref.flat()) < 1e-4);
  } finally {
    await ra.close();
    await rb.close();
  }
});

async function rowsOf(runner: ForwardRunner, ids: number[]): Promise<number[][]> {
  const { logits } = await runner.run({ ids: [ids] });
  return ids.map((_, t) => logitsRow(logits, 0, t));
}

test("gpt2 KV cache: prefill + one-token steps give the full pass's logits", async () => {
  const { dir } = makeModel(3, hubName);
  const full = await loadForward(dir);
  const cached = await loadForward(dir, { kvCache: true });
  try {
    const want = await rowsOf(full, IDS);
    let r = await cached.run({ ids: [IDS.slice(0, 4)] });
    const got = IDS.slice(0, 4).map((_, t) => logitsRow(r.logits, 0, t));
    for (let t = 4; t < IDS.length; t++) {
      r = await cached.run({ ids: [[IDS[t]!]], past: r.present! });
      got.push(logitsRow(r.logits, 0, 0));
    }
    assert.ok(maxAbsDiff(got.flat(), want.flat()) < 1e-4);
  } finally {
    await full.close();
    await cached.close();
  }
});

test("gpt2 left-padded batch: positions follow the mask, real tokens match unpadded runs", async () => {
  const { dir } = makeModel(4, hubName);
  const single = await loadForward(dir);
  const padded = await loadForward(dir, { attentionMask: true });
  try {
    const rows = [IDS, [7, 8, 9, 10]];
    const n = IDS.length;
    const ids = rows.map((r) => [...Array(n - r.length).fill(0), ...r]);
    const mask = rows.map((r) => [...Array(n - r.length).fill(0), ...r.map(() => 1)]);
    const { logits } = await padded.run({ ids, attentionMask: mask });
    assert.ok([...(logits.data as Float32Array)].every(Number.isFinite));
    for (const [b, row] of rows.entries()) {
      const got = row.map((_, t) => logitsRow(logits, b, n - row.length + t));
      assert.ok(maxAbsDiff(got.flat(), (await rowsOf(single, row)).flat()) < 1e-4, `row ${b}`);
    }
  } finally {
    await single.close();
    await padded.close();
  }
});
