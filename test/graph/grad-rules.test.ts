/**
 * One finite-difference check per backward rule, reported by op name; a test below fails when a
 * registered rule is exercised by none of them. float64 where onnxruntime's CPU kernels exist for
 * it (ε = 1e-6, |err| ≤ 1e-8 + 1e-6·|g|). float32 only for what is float-only
 * there (FusedMatMul, Gelu and Erf: no double kernels), checked at |err| ≤ 1e-5 + 1e-4·|g|: at least
 * 3x the float32 noise measured for each case's stencil (seeds 1-8, 30 samples), and far below the
 * up to 8.7e-4 (1% of the derivative for x in [-2.5, -1.75]) by which the erf and tanh forms of
 * GELU's derivative differ, so a rule with the other form's derivative fails.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { defineGrad, grad, gradRuleOf, registeredGradOps } from "../../src/graph/grad.js";
import { Graph, type Node, type Value } from "../../src/graph/ir.js";
import * as nn from "../../src/graph/nn.js";
import * as o from "../../src/graph/ops.js";
import { attentionCore } from "../../src/models/transformer.js";
import { type CheckOptions, checkGradient, type InputSpec } from "./gradcheck.js";

const F64: CheckOptions = { dtype: "float64" };
/**
 * Smooth float32 ops: five-point stencil, ε = 2⁻⁴ (gradcheck's float32 defaults), rtol 1e-4, atol 1e-5.
 * Measured worst |err| (seeds 1-8): Gelu 6.2e-6, FastGelu 5.7e-6, at most 30% of the tolerance.
 */
const F32: CheckOptions = { dtype: "float32" };
/**
 * Erf's fifth derivative is large (erf⁽⁵⁾(0) = 24/√π), so its stencil truncation at ε = 2⁻⁴ is ~1e-5:
 * ε = 2⁻⁵ gives a worst measured |err| of 2.5e-6 (23% of the tolerance).
 */
const F32_ERF: CheckOptions = { dtype: "float32", eps: 2 ** -5 };
/**
 * Ops linear in the perturbed input (products, casts): the central difference has no truncation error
 * at any step, so a large exact step (0.5) leaves only rounding noise: at most 1.1e-6 measured (6% of
 * the tolerance).
 */
const F32_LINEAR: CheckOptions = { dtype: "float32", stencil: 3, eps: 0.5 };
/**
 * onnxruntime runs FastGelu in double when the session is not optimised (as gradcheck's is), but its
 * tanh is an approximation: values are off by up to 2e-7 and the derivative by up to 1.2e-6 (seeds
 * 1-8), hence 1e-6 + 1e-5·|g| (28% used).
 */
const F64_FASTGELU: CheckOptions = { dtype: "float64", rtol: 1e-5, atol: 1e-6 };

/**
 * GELU inputs where the erf and tanh forms' derivatives differ most (8.7e-4 at |x| = 2, and by
 * 1% of the derivative for x in [-2.5, -1.75]), plus points on either side, every one checked: with
 * the other form's derivative, each point alone exceeds the float32 tolerance (by 1.6x at x = 0.75
 * to 9.6x at x = -2, for a projection weight of 0.12; the excess grows with the weight).
 */
const GELU_X = [-2.25, -2, -1.75, -1, -0.75, 0.75, 1, 1.75, 2, 2.25, 3.25, -3.25];
const ALL_GELU_X = { samples: GELU_X.length };

interface Case {
  op: string;
  build: (...xs: Value[]) => Value;
  inputs: InputSpec[];
  opts?: CheckOptions;
}

const pos = (shape: number[]): InputSpec => ({ shape, scale: 0.3, offset: 1.5 });

const cases: Case[] = [
  // matrix products, including transposes and batch broadcasting
  { op: "MatMul", build: (a, b) => o.matmul(a, b), inputs: [{ shape: [2, 3, 4] }, { shape: [4, 5] }] },
  {
    op: "MatMul batched",
    build: (a, b) => o.matmul(a, b),
    inputs: [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }],
  },
  {
    op: "MatMul broadcast batch",
    build: (a, b) => o.matmul(a, b),
    inputs: [{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 2] }],
  },
  ...([false, true] as const).flatMap((tA) =>
    ([false, true] as const).map(
      (tB): Case => ({
        op: `FusedMatMul transA=${+tA} transB=${+tB}`,
        build: (a, b) => o.fusedMatMul(a, b, { transA: tA, transB: tB, alpha: 0.7 }),
        inputs: [{ shape: tA ? [2, 4, 3] : [2, 3, 4] }, { shape: tB ? [5, 4] : [4, 5] }],
        opts: F32_LINEAR,
      }),
    ),
  ),
  {
    op: "FusedMatMul batched transA transB",
    build: (a, b) => o.fusedMatMul(a, b, { transA: true, transB: true }),
    inputs: [{ shape: [2, 4, 3] }, { shape: [2, 5, 4] }],
    opts: F32_LINEAR,
  },
  {
    op: "Gemm transA transB",
    build: (a, b, c) => o.gemm(a, b, c, { transA: true, transB: true, alpha: 0.5, beta: 2 }),
    inputs: [{ shape: [4, 3] }, { shape: [5, 4] }, { shape: [5] }],
  },
  {
    op: "Gemm",
    build: (a, b, c) => o.gemm(a, b, c),
    inputs: [{ shape: [3, 4] }, { shape: [4, 5] }, { shape: [3, 5] }],
  },
  // broadcasting arithmetic
  { op: "Add", build: (a, b) => o.add(a, b), inputs: [{ shape: [2, 3, 4] }, { shape: [3, 1] }] },
  { op: "Sub", build: (a, b) => o.sub(a, b), inputs: [{ shape: [4] }, { shape: [2, 3, 4] }] },
  { op: "Mul", build: (a, b) => o.mul(a, b), inputs: [{ shape: [2, 3, 4] }, { shape: [2, 1, 4] }] },
  { op: "Div", build: (a, b) => o.div(a, b), inputs: [{ shape: [2, 3] }, pos([3])] },
  { op: "Pow", build: (a, b) => o.pow(a, b), inputs: [pos([2, 3]), { shape: [3], scale: 0.5 }] },
  // unary
  { op: "Neg", build: (a) => o.neg(a), inputs: [{ shape: [3, 4] }] },
  // |x| is differentiated away from its kink at 0 (values at least 0.1 from it, both signs).
  {
    op: "Abs",
    build: (a) => o.abs(a),
    inputs: [{ shape: [2, 4], values: [-1.3, 0.4, -0.1, 2.2, 0.1, -0.7, 1.1, -2.5] }],
  },
  { op: "Identity", build: (a) => o.identity(a), inputs: [{ shape: [3, 4] }] },
  { op: "Sqrt", build: (a) => o.sqrt(a), inputs: [pos([3, 4])] },
  { op: "Reciprocal", build: (a) => o.reciprocal(a), inputs: [pos([3, 4])] },
  { op: "Exp", build: (a) => o.exp(a), inputs: [{ shape: [3, 4] }] },
  { op: "Log", build: (a) => o.log(a), inputs: [pos([3, 4])] },
  { op: "Tanh", build: (a) => o.tanh(a), inputs: [{ shape: [3, 4] }] },
  { op: "Sigmoid", build: (a) => o.sigmoid(a), inputs: [{ shape: [3, 4] }] },
  { op: "Erf", build: (a) => o.erf(a), inputs: [{ shape: [3, 4] }], opts: F32_ERF },
  {
    op: "Gelu (erf)",
    build: (a) => o.gelu(a),
    inputs: [{ shape: [3, 4], values: GELU_X }],
    opts: { ...F32, ...ALL_GELU_X },
  },
  {
    op: "Gelu (erf), random inputs",
    build: (a) => o.gelu(a),
    inputs: [{ shape: [3, 4], scale: 2 }],
    opts: F32,
  },
  {
    op: "Gelu (tanh)",
    build: (a) => o.geluTanh(a),
    inputs: [{ shape: [3, 4], values: GELU_X }],
    opts: { ...F32, ...ALL_GELU_X },
  },
  // The same rule in double. The float32 case above is the one where a rule with the erf form's
  // derivative fails numerically: here such a rule would not even run (no double Erf kernel).
  {
    op: "Gelu (tanh)",
    build: (a) => o.geluTanh(a),
    inputs: [{ shape: [3, 4], values: GELU_X }],
    opts: { ...F64_FASTGELU, ...ALL_GELU_X },
  },
  {
    op: "Gelu (tanh), random inputs",
    build: (a) => o.geluTanh(a),
    inputs: [{ shape: [3, 4], scale: 2 }],
    opts: F64_FASTGELU,
  },
  { op: "SiLU", build: (a) => o.silu(a), inputs: [{ shape: [3, 4], scale: 2 }] },
  // softmax family and reductions
  { op: "Softmax", build: (a) => o.softmax(a, -1), inputs: [{ shape: [2, 3, 5] }] },
  { op: "Softmax axis 1", build: (a) => o.softmax(a, 1), inputs: [{ shape: [2, 3, 5] }] },
  { op: "LogSoftmax", build: (a) => o.logSoftmax(a, -1), inputs: [{ shape: [2, 3, 5] }] },
  { op: "ReduceSum", build: (a) => o.reduceSum(a, [0, 2], false), inputs: [{ shape: [2, 3, 4] }] },
  { op: "ReduceSum keepdims", build: (a) => o.reduceSum(a, [1], true), inputs: [{ shape: [2, 3, 4] }] },
  { op: "ReduceMean", build: (a) => o.reduceMean(a, [-1], false), inputs: [{ shape: [2, 3, 4] }] },
  { op: "ReduceLogSumExp", build: (a) => o.reduceLogSumExp(a, [-1], false), inputs: [{ shape: [2, 3, 4] }] },
  // data movement
  { op: "Reshape", build: (a) => o.reshape(a, [6, -1]), inputs: [{ shape: [2, 3, 4] }] },
  { op: "Transpose", build: (a) => o.transpose(a, [2, 0, 1]), inputs: [{ shape: [2, 3, 4] }] },
  {
    op: "Slice",
    build: (a) => o.slice(a, [1, -3], [3, o.SLICE_END], [1, 2]),
    inputs: [{ shape: [2, 4, 5] }],
  },
  {
    // The optional steps input given, all ones: the rule reads it and still pads.
    op: "Slice with explicit steps 1",
    build: (a) => o.slice(a, [0, 2], [1, 4], [0, -1], [1, 1]),
    inputs: [{ shape: [3, 5] }],
  },
  { op: "Concat", build: (a, b) => o.concat([a, b, a], 1), inputs: [{ shape: [2, 3] }, { shape: [2, 2] }] },
  {
    op: "Split",
    build: (a) => {
      const [p, , r] = o.split(a, 1, [1, 2, 2]) as [Value, Value, Value];
      return o.concat([r, p], 1); // the middle part gets no gradient: zeros
    },
    inputs: [{ shape: [2, 5] }],
  },
  { op: "Unsqueeze", build: (a) => o.unsqueeze(a, [0, 2]), inputs: [{ shape: [3, 4] }] },
  { op: "Squeeze", build: (a) => o.squeeze(a, [1]), inputs: [{ shape: [3, 1, 4] }] },
  { op: "Expand", build: (a) => o.expand(a, [2, 3, 4]), inputs: [{ shape: [3, 1] }] },
  // indexing, masking
  {
    op: "Gather (embedding, repeated ids)",
    build: (table, ids) => o.gather(table, ids, 0),
    inputs: [{ shape: [6, 4] }, { shape: [2, 5], kind: "int64", values: [1, 3, 3, 0, 5, 5, 5, 1, 2, 3] }],
  },
  {
    op: "GatherElements",
    build: (x, idx) => o.gatherElements(x, idx, 1),
    inputs: [{ shape: [3, 4] }, { shape: [3, 2], kind: "int64", values: [0, 3, 1, 1, 2, 0] }],
  },
  {
    op: "Where (causal mask)",
    build: (x, y) => o.where(o.less(o.range(x.graph, 4), o.i64(x.graph, [0, 2, 2, 3])), x, y),
    inputs: [{ shape: [3, 4] }, { shape: [4] }],
  },
  {
    op: "Cast float32 -> float64",
    build: (x) => o.cast(x, "float64"),
    inputs: [{ shape: [3, 4] }],
    opts: F32_LINEAR,
  },
  {
    // Linear but rounding: x ± 0.5 rounded to float32 moves L by ~6e-8·|x·P| per step, ~1e-7 of g.
    op: "Cast float64 -> float32",
    build: (x) => o.cast(x, "float32"),
    inputs: [{ shape: [3, 4] }],
    opts: { dtype: "float64", eps: 0.5, rtol: 1e-5, atol: 1e-7 },
  },
  // normalisation
  {
    op: "LayerNormalization",
    build: (x, s, b) => o.layerNorm(x, s, b, 1e-5),
    inputs: [{ shape: [2, 3, 6] }, { shape: [6] }, { shape: [6] }],
  },
  { op: "RMSNorm", build: (x, s) => o.rmsNorm(x, s, 1e-6), inputs: [{ shape: [2, 3, 6] }, { shape: [6] }] },
  // model blocks
  {
    op: "Rotary embedding",
    build: (x, cos, sin) => nn.rope(x, cos, sin),
    inputs: [{ shape: [2, 2, 3, 4] }, { shape: [3, 4], kind: "const" }, { shape: [3, 4], kind: "const" }],
  },
  {
    op: "Attention core (probabilities recomputed in the backward pass)",
    build: (q, k, v, bias) => attentionCore(q, k, v, bias, 0.5),
    inputs: [
      { shape: [2, 2, 3, 4] },
      { shape: [2, 2, 5, 4] },
      { shape: [2, 2, 5, 4] },
      // causal-style bias: query i sees keys 0..i+2
      {
        shape: [1, 1, 3, 5],
        kind: "const",
        values: [0, 0, 0, -1e9, -1e9, 0, 0, 0, 0, -1e9, 0, 0, 0, 0, 0],
      },
    ],
  },
  {
    op: "SwiGLU silu(gate)·up (σ recomputed in the backward pass)",
    build: (gate, up) => nn.swiGlu(gate, up),
    inputs: [{ shape: [2, 3, 5] }, { shape: [2, 3, 5] }],
  },
  {
    op: "Token cross-entropy (ignore -100)",
    build: (logits, labels) => nn.crossEntropy(logits, labels),
    inputs: [{ shape: [2, 3, 7] }, { shape: [2, 3], kind: "int64", values: [1, -100, 6, 0, 3, -100] }],
  },
  {
    op: "LM head + cross-entropy, trained head (custom backward)",
    build: (h, w, labels) => nn.trainedHeadCrossEntropy(h, w, labels),
    inputs: [
      { shape: [2, 3, 4] },
      { shape: [7, 4] },
      { shape: [2, 3], kind: "int64", values: [1, -100, 6, 0, 6, 2] },
    ],
  },
  ...[1, 4, 8].map((chunks) => ({
    // 6 tokens in 8 chunks: some chunks are empty.
    op: `LM head + cross-entropy, frozen head, ${chunks} token chunks (gradient formed in the forward pass)`,
    build: (h: Value, w: Value, labels: Value) => nn.frozenHeadCrossEntropy(h, w, labels, { chunks }),
    inputs: [
      { shape: [2, 3, 4] },
      { shape: [7, 4], kind: "const" as const },
      { shape: [2, 3], kind: "int64" as const, values: [1, -100, 6, 0, 6, 2] },
    ],
  })),
  {
    op: "SoftmaxCrossEntropyLoss mean",
    build: (s, l) => o.softmaxCrossEntropy(s, l, { reduction: "mean", ignoreIndex: -100 }),
    inputs: [{ shape: [4, 5] }, { shape: [4], kind: "int64", values: [4, -100, 0, 2] }],
  },
  {
    op: "SoftmaxCrossEntropyLoss sum",
    build: (s, l) => o.softmaxCrossEntropy(s, l, { reduction: "sum", ignoreIndex: -100 }),
    inputs: [{ shape: [4, 5] }, { shape: [4], kind: "int64", values: [4, -100, 0, 2] }],
  },
  {
    op: "SoftmaxCrossEntropyLoss none",
    build: (s, l) => o.softmaxCrossEntropy(s, l, { reduction: "none", ignoreIndex: -100 }),
    inputs: [{ shape: [4, 5] }, { shape: [4], kind: "int64", values: [4, -100, 0, 2] }],
  },
];

for (const c of cases) {
  const opts = c.opts ?? F64;
  test(`grad ${c.op} (${opts.dtype})`, async (t) => {
    const r = await checkGradient(c.build, c.inputs, opts);
    t.diagnostic(
      `${c.op}: ${r.checked} partials, max |err| ${r.maxAbsErr.toExponential(2)}, ${(100 * r.tolUsed).toFixed(1)}% of the tolerance`,
    );
    assert.ok(r.checked > 0);
  });
}

/**
 * Registered rules that no case above exercises directly, with the reason they need none of their own.
 * Empty: every rule has one.
 */
const COVERED_ELSEWHERE: Record<string, string> = {};

/** The graph a case is checked on (as checkGradient builds it, without running it), differentiated. */
function differentiateCase(c: Case): void {
  const g = new Graph();
  const dtype = (c.opts ?? F64).dtype;
  const xs = c.inputs.map((spec, i) => {
    if (spec.kind === "const") {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      const data = dtype === "float64" ? new Float64Array(n) : new Float32Array(n);
      return g.initializer(`c${i}`, dtype, spec.shape, { kind: "data", data });
    }
    return g.input(`x${i}`, spec.kind === "int64" ? "int64" : dtype, spec.dims ?? spec.shape);
  });
  const out = c.build(...xs);
  const caseNodes = new Set(g.nodes);
  const loss = o.reduceSum(
    o.mul(out, g.input("proj", out.dtype, out.shape)),
    [...Array(out.rank).keys()],
    false,
  );
  const differentiated = xs.filter((_, i) => (c.inputs[i]!.kind ?? "float") === "float");
  exercising = caseNodes;
  try {
    grad(loss, differentiated);
  } finally {
    exercising = undefined;
  }
}

/** While a case is differentiated: its own nodes (the projection and sum around it are not its). */
let exercising: Set<Node> | undefined;

test("every op with a backward rule has a finite-difference case", () => {
  const registered = registeredGradOps();
  const exercised = new Set<string>();
  const originals = registered.map((k) => {
    const [domain, op] = k.includes("::") ? (k.split("::") as [string, string]) : ["", k];
    const rule = gradRuleOf(op, domain)!;
    defineGrad(
      op,
      (ctx) => {
        if (exercising?.has(ctx.node)) exercised.add(k);
        return rule(ctx);
      },
      domain,
    );
    return { op, domain, rule };
  });
  try {
    for (const c of cases) differentiateCase(c);
  } finally {
    for (const { op, domain, rule } of originals) defineGrad(op, rule, domain);
  }
  const missing = registered.filter((k) => !exercised.has(k) && !(k in COVERED_ELSEWHERE));
  assert.deepEqual(
    missing,
    [],
    `ops with a backward rule but no finite-difference case: ${missing.join(", ")}`,
  );
  const stale = Object.keys(COVERED_ELSEWHERE).filter((k) => exercised.has(k) || !registered.includes(k));
  assert.deepEqual(stale, [], "COVERED_ELSEWHERE lists ops that need no exception");
});

test("gradient check catches a wrong rule", async () => {
  // Sanity check of the checker itself: compare a function against a deliberately different one.
  const { defineGrad } = await import("../../src/graph/grad.js");
  defineGrad("Relu", ({ gy }) => [o.mul(gy[0]!, 2)]); // wrong on purpose (Relu is not used elsewhere)
  const relu = (x: Value) =>
    x.graph.addNode("Relu", [x], {}, [{ dtype: x.dtype, shape: x.shape }]).outputs[0]!;
  await assert.rejects(checkGradient(relu, [{ shape: [3, 4] }], F64), /gradient mismatch/);
});
