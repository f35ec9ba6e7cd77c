/**
 * One DoRA layer as the model builds it (inject.ts's LoRA context over a base context, dora.ts's
 * forward) against test/peers/dora_layer_reference.py, a float64 PyTorch layer written from the
 * paper's equations with the weight norm detached: the output and the gradients of Σ y·P with respect
 * to x, A, B and the magnitude agree within 1e-5 (relative to each tensor's largest value when it
 * exceeds 1), for a linear layer with a bias, GPT-2's Conv1D layout and an embedding, with and
 * without dropout (the same keep mask fed to both sides).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { Session, type TensorValue } from "../../src/graph/runtime.js";
import { loraKeys, magnitudeKey } from "../../src/lora/adapter.js";
import { DropoutInputs, dropoutMaskName } from "../../src/lora/dropout.js";
import { loraContext } from "../../src/lora/inject.js";
import type { SelectedModule } from "../../src/lora/targets.js";
import { contextFromParams } from "../../src/models/base-context.js";
import { Rng } from "../../src/util/rng.js";
import { needsTorch, runPeer } from "../helpers/torch.js";

const [BATCH, SEQ, IN, OUT, R, VOCAB] = [2, 3, 6, 5, 3, 7];
const S = 1.75;

type Kind = "linear" | "conv1d" | "embedding";

interface Case {
  kind: Kind;
  dropout: number;
}

function nest(data: Float32Array | Uint8Array, shape: number[]): unknown {
  if (shape.length === 1) return [...data];
  const inner = shape.slice(1).reduce((a, b) => a * b, 1);
  return Array.from({ length: shape[0]! }, (_, i) =>
    nest(data.subarray(i * inner, (i + 1) * inner), shape.slice(1)),
  );
}

const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(flat) : [v as number]);

async function compare({ kind, dropout }: Case): Promise<void> {
  const rng = new Rng(kind.length * 10 + (dropout > 0 ? 1 : 0));
  const randn = (n: number, std = 1) => rng.fillNormal(new Float32Array(n), 0, std) as Float32Array;
  const emb = kind === "embedding";
  const [fin, fout] = emb ? [VOCAB, OUT] : [IN, OUT];
  const path = "layer";
  const mod: SelectedModule = {
    path,
    kind: emb ? "embedding" : "linear",
    r: R,
    alpha: S * R,
    scaling: S,
    fanInFanOut: kind === "conv1d",
    in: fin,
    out: fout,
  };
  const wShape = kind === "linear" ? [OUT, IN] : kind === "conv1d" ? [IN, OUT] : [VOCAB, OUT];
  const W = randn(fin * fout, 0.5);
  const bias = randn(fout, 0.3);
  const A = randn(R * fin, 0.4);
  const B = randn(fout * R, 0.4);
  const m = Float32Array.from(randn(fout), (v) => 1 + 0.3 * v);
  const x = randn(BATCH * SEQ * IN);
  const ids = BigInt64Array.from({ length: BATCH * SEQ }, (_, i) => BigInt((i * 3) % VOCAB));
  const keep = Uint8Array.from({ length: BATCH * SEQ * IN }, () => (rng.float() < dropout ? 0 : 1));
  const proj = randn(BATCH * SEQ * OUT);

  const g = new Graph();
  const params = new Map<string, Value>([
    [`${path}.weight`, g.initializer(`${path}.weight`, "float32", wShape, { kind: "data", data: W })],
    [`${path}.bias`, g.initializer(`${path}.bias`, "float32", [fout], { kind: "data", data: bias })],
  ]);
  const base = contextFromParams(g, (name) => params.get(name)!);
  const drop = dropout > 0 ? new DropoutInputs(g, g.input("rate", "float32", [])) : undefined;
  const ctx = loraContext(base, [mod], { scaling: "config", dora: true, dropout: drop });
  const xIn = emb ? g.input("ids", "int64", ["batch", "seq"]) : g.input("x", "float32", ["batch", "seq", IN]);
  const y = emb
    ? ctx.embedding(xIn, path)
    : ctx.linear(xIn, { path, inFeatures: IN, outFeatures: OUT, bias: true, fanInFanOut: kind === "conv1d" });
  const keys = loraKeys(path, mod.kind);
  const wrt = [keys.A, keys.B, magnitudeKey(path)].map((k) => ctx.loraInputs.get(k)!);
  if (!emb) wrt.push(xIn);
  const P = g.input("proj", "float32", ["batch", "seq", OUT]);
  const grads = grad(o.reduceSum(o.mul(y, P), [0, 1, 2], false), wrt);
  g.output(y, "y");
  grads.forEach((gv, i) => {
    g.output(gv, `g${i}`);
  });
  const session = await Session.create(emitModel(g), { threads: 1 });
  const feeds: Record<string, TensorValue> = {
    [keys.A]: { dtype: "float32", dims: [R, fin], data: A },
    [keys.B]: { dtype: "float32", dims: [fout, R], data: B },
    [magnitudeKey(path)]: { dtype: "float32", dims: [fout], data: m },
    proj: { dtype: "float32", dims: [BATCH, SEQ, OUT], data: proj },
  };
  if (emb) feeds["ids"] = { dtype: "int64", dims: [BATCH, SEQ], data: ids };
  else feeds["x"] = { dtype: "float32", dims: [BATCH, SEQ, IN], data: x };
  if (drop) {
    feeds["rate"] = { dtype: "float32", dims: [], data: Float32Array.of(dropout) };
    feeds[dropoutMaskName(1)] = { dtype: "uint8", dims: [BATCH, SEQ, IN], data: keep };
  }
  const got = await session.run(feeds);
  await session.release();

  const want = runPeer<{ y: unknown; grads: Record<string, unknown> }>("dora_layer_reference.py", {
    kind,
    s: S,
    p: dropout,
    W: nest(W, wShape),
    bias: emb ? null : [...bias],
    A: nest(A, [R, fin]),
    B: nest(B, [fout, R]),
    m: [...m],
    x: nest(x, [BATCH, SEQ, IN]),
    ids: nest(Float32Array.from(ids, Number), [BATCH, SEQ]),
    keep: dropout > 0 ? nest(keep, [BATCH, SEQ, IN]) : null,
    proj: nest(proj, [BATCH, SEQ, OUT]),
  });
  const check = (name: string, ours: ArrayLike<number>, ref: number[]) => {
    assert.equal(ours.length, ref.length, name);
    const scale = Math.max(1, ...ref.map(Math.abs));
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - ref[i]!) / scale);
    assert.ok(
      worst <= 1e-5,
      `${kind}, dropout ${dropout}: ${name} differs by ${worst} (relative to ${scale})`,
    );
  };
  check("y", got["y"]!.data as Float32Array, flat(want.y));
  ["A", "B", "m", "x"].slice(0, wrt.length).forEach((name, i) => {
    check(`d${name}`, got[`g${i}`]!.data as Float32Array, flat(want.grads[name]));
  });
}

for (const c of [
  { kind: "linear", dropout: 0 },
  { kind: "linear", dropout: 0.3 },
  { kind: "conv1d", dropout: 0 },
  { kind: "conv1d", dropout: 0.3 },
  { kind: "embedding", dropout: 0 },
] as Case[]) {
  test(
    `DoRA ${c.kind} layer${c.dropout > 0 ? " with dropout" : ""}: output and gradients (x, A, B, m) equal PyTorch's within 1e-5`,
    {
      skip: needsTorch,
    },
    () => compare(c),
  );
}
