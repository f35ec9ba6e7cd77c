/**
 * Finite-difference checks of the backward rules on graphs built with symbolic dims ("batch", "seq",
 * "past"), as training and generation graphs are, fed concrete tensors. Several rules take a different
 * branch when a dim is only known at run time (Slice's pads, Concat's split sizes, ReduceMean's count,
 * the Reshape fallback to the forward input's run-time shape); each case here also asserts that the
 * built graph went through that branch, so a case cannot silently stop covering it. float64 throughout
 * (ε = 1e-6, |err| ≤ 1e-8 + 1e-6·|g|, as in grad-rules.test.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Graph, Node, Value } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import * as o from "../../src/graph/ops.js";
import { mulDims } from "../../src/graph/shape.js";
import { blockedAttention } from "../../src/models/query-blocks.js";
import { attentionCore } from "../../src/models/transformer.js";
import { type CheckOptions, checkGradient, type InputSpec } from "./gradcheck.js";

const F64: CheckOptions = { dtype: "float64" };

/** The ops that `v` is computed from, itself included. */
function upstreamOps(v: Value | null): Set<string> {
  const ops = new Set<string>();
  const seen = new Set<Value>();
  const stack = v ? [v] : [];
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    if (!x.producer) continue;
    ops.add(x.producer.op);
    for (const i of x.producer.inputs) if (i) stack.push(i);
  }
  return ops;
}

const nodesOf = (g: Graph, op: string): Node[] => g.nodes.filter((n) => n.op === op);

interface Case {
  name: string;
  build: (...xs: Value[]) => Value;
  inputs: InputSpec[];
  /** Asserts that the checked graph took the run-time branch this case is for. */
  branch?: (g: Graph) => void;
}

const cases: Case[] = [
  {
    // Three sliced symbolic axes: start 0 to the end (the slice's extent "batch" is read from g at
    // run time), start ≥ 0 (pad begin = start), start < 0 (pad begin = dim + start).
    name: "Slice of symbolic dims (pads computed at run time)",
    build: (x) => o.slice(x, [0, 1, -3], [o.SLICE_END, 3, o.SLICE_END], [0, 1, 2]),
    inputs: [{ shape: [2, 5, 6], dims: ["batch", "seq", "n"] }],
    branch: (g) => {
      const pads = nodesOf(g, "Pad");
      assert.equal(pads.length, 1);
      assert.ok(upstreamOps(pads[0]!.inputs[1]!).has("Shape"), "Slice's pads should be read from shapes");
    },
  },
  {
    // A KV-cache-style concatenation along a symbolic axis, one input used twice.
    name: "Concat along symbolic dims (split sizes read at run time)",
    build: (past, cur) => o.concat([past, cur, past], 1),
    inputs: [
      { shape: [2, 3, 4], dims: ["batch", "past", 4] },
      { shape: [2, 2, 4], dims: ["batch", "seq", 4] },
    ],
    branch: (g) => {
      const splits = nodesOf(g, "Split");
      assert.equal(splits.length, 1);
      assert.ok(upstreamOps(splits[0]!.inputs[1]!).has("Shape"), "Concat's split sizes should be run-time");
    },
  },
  {
    // The mean's count is seq·3, one symbolic and one static dim.
    name: "ReduceMean over symbolic dims (count computed at run time)",
    build: (x) => o.reduceMean(o.mul(x, x), [1, -1], false),
    inputs: [{ shape: [2, 4, 3], dims: [2, "seq", 3] }],
    branch: (g) => {
      const prods = nodesOf(g, "ReduceProd");
      assert.equal(prods.length, 1);
      assert.ok(upstreamOps(prods[0]!.outputs[0]!).has("Shape"), "ReduceMean's count should be run-time");
    },
  },
  {
    // keys = "past+seq" has no graph input to read it from, so the backward Reshape cannot be given
    // the input's symbolic shape and falls back to Shape(forward input).
    name: "Reshape back to a [past+seq, batch] input (target shape read from the input)",
    build: (past, cur) => o.reshape(o.concat([past, cur], 0), [-1]),
    inputs: [
      { shape: [3, 2], dims: ["past", "batch"] },
      { shape: [2, 2], dims: ["seq", "batch"] },
    ],
    branch: (g) => {
      const fallback = nodesOf(g, "Reshape").filter((n) => {
        const target = n.inputs[1]!.producer;
        return target?.op === "Shape" && Object.keys(target.attrs).length === 0;
      });
      assert.equal(fallback.length, 1, "the backward Reshape should take its shape from Shape(input)");
      assert.deepEqual(fallback[0]!.outputs[0]!.shape, ["past+seq", "batch"]);
    },
  },
  {
    name: "Squeeze of a [batch, 1, seq] input",
    build: (x) => o.mul(o.squeeze(x, [1]), o.squeeze(x, [1])),
    inputs: [{ shape: [2, 1, 3], dims: ["batch", 1, "seq"] }],
  },
  {
    name: "Expand of a [1, seq] input to [batch, seq]",
    build: (x, y) => o.mul(o.expand(x, ["batch", "seq"]), y),
    inputs: [
      { shape: [1, 3], dims: [1, "seq"] },
      { shape: [2, 3], dims: ["batch", "seq"] },
    ],
  },
  // training-shaped blocks
  {
    name: "Token cross-entropy, logits [batch, seq, vocab]",
    build: (logits, labels) => nn.crossEntropy(logits, labels),
    inputs: [
      { shape: [2, 3, 7], dims: ["batch", "seq", 7] },
      { shape: [2, 3], dims: ["batch", "seq"], kind: "int64", values: [1, -100, 6, 0, 3, -100] },
    ],
  },
  {
    name: "LM head + cross-entropy, hidden [batch, seq, dim], trained head",
    build: (h, w, labels) => nn.trainedHeadCrossEntropy(h, w, labels),
    inputs: [
      { shape: [2, 3, 4], dims: ["batch", "seq", 4] },
      { shape: [7, 4] },
      { shape: [2, 3], dims: ["batch", "seq"], kind: "int64", values: [1, -100, 6, 0, 6, 2] },
    ],
  },
  {
    name: "LM head + cross-entropy, hidden [batch, seq, dim], frozen head in 4 chunks",
    build: (h, w, labels) => nn.frozenHeadCrossEntropy(h, w, labels, { chunks: 4 }),
    inputs: [
      { shape: [2, 3, 4], dims: ["batch", "seq", 4] },
      { shape: [7, 4], kind: "const" },
      { shape: [2, 3], dims: ["batch", "seq"], kind: "int64", values: [1, -100, 6, 0, 6, 2] },
    ],
  },
  {
    name: "Linear + RMSNorm + SwiGLU, x [batch, seq, dim]",
    build: (x, w, s) => {
      const h = o.rmsNorm(nn.linear(x, w), s, 1e-6);
      const [gate, up] = o.split(h, -1, [3, 3]) as [Value, Value];
      return nn.swiGlu(gate, up);
    },
    inputs: [{ shape: [2, 3, 4], dims: ["batch", "seq", 4] }, { shape: [6, 4] }, { shape: [6] }],
  },
  {
    name: "Causal attention core, q/k/v [batch, heads, seq, d], mask built from seq",
    build: (q, k, v) => {
      const g = q.graph;
      const future = o.greater(o.unsqueeze(o.range(g, "seq"), [0]), o.unsqueeze(o.range(g, "seq"), [1]));
      const bias = o.where(future, o.scalar(g, -1e9, "float64"), 0); // [seq, seq]
      return attentionCore(q, k, v, bias, 0.5);
    },
    inputs: [
      { shape: [2, 2, 3, 4], dims: ["batch", 2, "seq", 4] },
      { shape: [2, 2, 3, 4], dims: ["batch", 2, "seq", 4] },
      { shape: [2, 2, 3, 4], dims: ["batch", 2, "seq", 4] },
    ],
  },
  {
    name: "Causal attention in 3 query blocks (7 positions: 2, 2, 3), grouped queries",
    build: (q, k, v) => {
      const g = q.graph;
      const future = o.greater(o.unsqueeze(o.range(g, "seq"), [0]), o.unsqueeze(o.range(g, "seq"), [1]));
      const causal = o.where(future, o.scalar(g, -1e9, "float64"), 0); // [seq, seq]
      // [1, 1, groups·seq, seq], group-major rows as transformer.ts attentionBias lays them out
      const bias = o.reshape(o.expand(causal, [1, 1, 2, "seq", "seq"]), [1, 1, mulDims(2, "seq"), "seq"]);
      return blockedAttention(q, k, v, bias, 0.5, 3);
    },
    inputs: [
      { shape: [2, 2, 2, 7, 4], dims: ["batch", 2, 2, "seq", 4] },
      { shape: [2, 2, 7, 4], dims: ["batch", 2, "seq", 4] },
      { shape: [2, 2, 7, 4], dims: ["batch", 2, "seq", 4] },
    ],
  },
];

for (const c of cases) {
  test(`grad with symbolic dims: ${c.name}`, async (t) => {
    const r = await checkGradient(c.build, c.inputs, F64);
    t.diagnostic(`${r.checked} partials, max |err| ${r.maxAbsErr.toExponential(2)}`);
    assert.ok(r.checked > 0);
    c.branch?.(r.graph);
  });
}

test("gradcheck refuses declared dims whose numbers disagree with the fed shape", async () => {
  await assert.rejects(
    checkGradient((x) => o.neg(x), [{ shape: [2, 3], dims: ["batch", 4] }], F64),
    /dims \[batch,4\] do not fit shape \[2,3\]/,
  );
});
