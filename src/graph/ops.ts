/**
 * The graph builder: one function per ONNX op, each checking shapes and dtypes when the graph is
 * built (so a model-building mistake names the op and the shapes), e.g.
 *
 *     const h = add(matmul(x, w), b);
 *
 * Values carry their graph, so no builder object is passed around. A plain number where a Value is
 * expected becomes a scalar constant of the other operand's dtype.
 */
import { GraphBuildError } from "../util/errors.js";
import { type DType, isFloat, ONNX_DTYPE } from "./dtype.js";
import { type Attr, attr, type Graph, type OutputSpec, type Value } from "./ir.js";
import {
  addDims,
  broadcastShapes,
  type Dim,
  dimEq,
  divDims,
  fmtShape,
  mulDims,
  normAxis,
  numel,
  type Shape,
} from "./shape.js";

export type Operand = Value | number;
export const MS_DOMAIN = "com.microsoft";
/** ONNX's "to the end" for Slice. */
export const SLICE_END = Number.MAX_SAFE_INTEGER;

function fail(op: string, msg: string, ...vals: Value[]): never {
  const shapes = vals.map((v) => `${v.dtype}${fmtShape(v.shape)}`).join(", ");
  throw new GraphBuildError(`${op}: ${msg}${vals.length ? ` (inputs ${shapes})` : ""}`);
}

function node(
  op: string,
  inputs: (Value | null)[],
  attrs: Record<string, Attr>,
  out: OutputSpec,
  domain = "",
): Value {
  return graphOf(...inputs).addNode(op, inputs, attrs, [out], domain).outputs[0]!;
}

function graphOf(...vals: (Value | null | number)[]): Graph {
  for (const v of vals) if (v !== null && typeof v === "object") return v.graph;
  throw new GraphBuildError("an op needs at least one graph value among its inputs");
}

// ---------------------------------------------------------------- constants

function typedFor(dtype: DType, values: readonly number[]) {
  switch (dtype) {
    case "float32":
      return Float32Array.from(values);
    case "float64":
      return Float64Array.from(values);
    case "int64":
      return BigInt64Array.from(values.map((v) => BigInt(Math.trunc(v))));
    case "int32":
      return Int32Array.from(values);
    case "bool":
    case "uint8":
      return Uint8Array.from(values);
    case "int8":
      return Int8Array.from(values);
    default:
      throw new GraphBuildError(`constants of dtype ${dtype} must be given as raw data`);
  }
}

/** A small constant tensor; identical constants are shared. */
export function constant(g: Graph, dtype: DType, dims: number[], values: readonly number[]): Value {
  const key = `${dtype}|${dims.join(",")}|${values.join(",")}`;
  const hit = g.constCache.get(key);
  if (hit) return hit;
  const v = g.initializer(`const_${g.constCache.size}`, dtype, dims, {
    kind: "data",
    data: typedFor(dtype, values),
  });
  g.constCache.set(key, v);
  return v;
}

export function scalar(g: Graph, value: number, dtype: DType = "float32"): Value {
  return constant(g, dtype, [], [value]);
}

export function i64(g: Graph, values: readonly number[]): Value {
  return constant(g, "int64", [values.length], values);
}

function operand(x: Operand, like: Value): Value {
  return typeof x === "number" ? scalar(like.graph, x, like.dtype) : x;
}

function pair(op: string, a: Operand, b: Operand): [Value, Value] {
  if (typeof a === "number" && typeof b === "number")
    throw new GraphBuildError(`${op}: two numbers, no graph value`);
  const va = typeof a === "number" ? operand(a, b as Value) : a;
  const vb = typeof b === "number" ? operand(b, va) : b;
  if (va.dtype !== vb.dtype) fail(op, `dtype mismatch ${va.dtype} vs ${vb.dtype}`, va, vb);
  return [va, vb];
}

// ---------------------------------------------------------------- symbolic shapes at run time

/** The runtime value (int64 [1]) of one symbolic dim, computed from a graph input's Shape. */
function dimValue(g: Graph, d: Dim): Value {
  if (typeof d === "number") return i64(g, [d]);
  const key = `dim:${d}`;
  const hit = g.constCache.get(key);
  if (hit) return hit;
  let v: Value;
  const src = g.symbolSources.get(d);
  if (src) {
    v = node(
      "Shape",
      [src.value],
      { start: attr.i(src.axis), end: attr.i(src.axis + 1) },
      { dtype: "int64", shape: [1] },
    );
  } else if (d.includes("*") && !d.includes("+")) {
    const parts = d.split("*");
    v = parts.map((p) => dimValue(g, /^\d+$/.test(p) ? Number(p) : p)).reduce((a, b) => mul(a, b));
  } else {
    throw new GraphBuildError(`symbolic dim "${d}" has no graph input to read it from`);
  }
  g.constCache.set(key, v);
  return v;
}

/** An int64 shape tensor for `dims`, which may be symbolic. */
export function shapeTensor(g: Graph, dims: readonly Dim[]): Value {
  if (dims.every((d) => typeof d === "number")) return i64(g, dims as number[]);
  return concat(
    dims.map((d) => dimValue(g, d)),
    0,
  );
}

// ---------------------------------------------------------------- elementwise

function binary(op: string, a: Operand, b: Operand, outDtype?: DType): Value {
  const [va, vb] = pair(op, a, b);
  return node(
    op,
    [va, vb],
    {},
    { dtype: outDtype ?? va.dtype, shape: broadcastShapes(op, va.shape, vb.shape) },
  );
}

export const add = (a: Operand, b: Operand) => binary("Add", a, b);
export const sub = (a: Operand, b: Operand) => binary("Sub", a, b);
export const mul = (a: Operand, b: Operand) => binary("Mul", a, b);
export const div = (a: Operand, b: Operand) => binary("Div", a, b);
export const pow = (a: Operand, b: Operand) => binary("Pow", a, b);
export const equal = (a: Operand, b: Operand) => binary("Equal", a, b, "bool");
export const less = (a: Operand, b: Operand) => binary("Less", a, b, "bool");
export const greater = (a: Operand, b: Operand) => binary("Greater", a, b, "bool");
export const greaterOrEqual = (a: Operand, b: Operand) => binary("GreaterOrEqual", a, b, "bool");
export const and = (a: Value, b: Value) => binary("And", a, b, "bool");

function unary(op: string, x: Value, domain = "", attrs: Record<string, Attr> = {}): Value {
  return node(op, [x], attrs, { dtype: x.dtype, shape: x.shape }, domain);
}

export const neg = (x: Value) => unary("Neg", x);
export const sqrt = (x: Value) => unary("Sqrt", x);
export const reciprocal = (x: Value) => unary("Reciprocal", x);
export const exp = (x: Value) => unary("Exp", x);
export const log = (x: Value) => unary("Log", x);
export const tanh = (x: Value) => unary("Tanh", x);
export const sigmoid = (x: Value) => unary("Sigmoid", x);
export const erf = (x: Value) => unary("Erf", x);
export const abs = (x: Value) => unary("Abs", x);
/** Round half to even. */
export const round = (x: Value) => unary("Round", x);
export const not = (x: Value) => unary("Not", x);
export const identity = (x: Value) => unary("Identity", x);
/**
 * x, as a constant for the autodiff (PyTorch's detach()): an Identity node that `grad` does not
 * differentiate through, so nothing computed from x before it gets a gradient along this path.
 */
export function stopGradient(x: Value): Value {
  const y = unary("Identity", x);
  x.graph.gradientStops.add(y.producer!);
  return y;
}
/** GELU, erf form (ORT contrib op). */
export const gelu = (x: Value) => unary("Gelu", x, MS_DOMAIN);
/** GELU, tanh approximation (ORT contrib op), as GPT-2's "gelu_new". */
export const geluTanh = (x: Value) => unary("FastGelu", x, MS_DOMAIN);
/** SiLU(x) = x·sigmoid(x), Llama's MLP activation. */
export const silu = (x: Value) => mul(x, sigmoid(x));

export function cast(x: Value, to: DType): Value {
  if (x.dtype === to) return x;
  return node("Cast", [x], { to: attr.i(ONNX_DTYPE[to]) }, { dtype: to, shape: x.shape });
}

export function where(cond: Value, x: Operand, y: Operand): Value {
  if (cond.dtype !== "bool") fail("Where", "condition must be bool", cond);
  const [vx, vy] = pair("Where", x, y);
  return node(
    "Where",
    [cond, vx, vy],
    {},
    { dtype: vx.dtype, shape: broadcastShapes("Where", cond.shape, vx.shape, vy.shape) },
  );
}

// ---------------------------------------------------------------- matrix products

function matmulShape(op: string, a: Value, b: Value, transA: boolean, transB: boolean): Shape {
  if (a.rank < 2 || b.rank < 2) fail(op, "needs rank >= 2 operands", a, b);
  const [m, ka] = transA ? [a.dim(-1), a.dim(-2)] : [a.dim(-2), a.dim(-1)];
  const [kb, n] = transB ? [b.dim(-1), b.dim(-2)] : [b.dim(-2), b.dim(-1)];
  if (!dimEq(ka, kb)) fail(op, `inner dims differ: ${ka} vs ${kb}`, a, b);
  const batch = broadcastShapes(op, a.shape.slice(0, -2), b.shape.slice(0, -2));
  return [...batch, m, n];
}

export function matmul(a: Value, b: Value): Value {
  if (a.dtype !== b.dtype) fail("MatMul", "dtype mismatch", a, b);
  return node("MatMul", [a, b], {}, { dtype: a.dtype, shape: matmulShape("MatMul", a, b, false, false) });
}

/** ORT's FusedMatMul: alpha · op(A) · op(B) with op = optional transpose of the last two dims, no copy. */
export function fusedMatMul(
  a: Value,
  b: Value,
  opts: { transA?: boolean; transB?: boolean; alpha?: number } = {},
): Value {
  const { transA = false, transB = false, alpha = 1 } = opts;
  if (a.dtype !== b.dtype) fail("FusedMatMul", "dtype mismatch", a, b);
  const shape = matmulShape("FusedMatMul", a, b, transA, transB);
  const attrs = { transA: attr.i(transA ? 1 : 0), transB: attr.i(transB ? 1 : 0), alpha: attr.f(alpha) };
  return node("FusedMatMul", [a, b], attrs, { dtype: a.dtype, shape }, MS_DOMAIN);
}

/**
 * alpha · op(a) · op(b) with op = optional transpose of the last two dims: FusedMatMul for float32
 * (transposes are kernel flags, no copy of the weight); MatMul (+Transpose) for float64, which
 * onnxruntime's FusedMatMul does not cover.
 */
export function product(a: Value, b: Value, transA: boolean, transB: boolean, alpha = 1): Value {
  if (a.dtype === "float32") return fusedMatMul(a, b, { transA, transB, alpha });
  const swap = (r: number) => [...Array(r - 2).keys(), r - 1, r - 2];
  const out = matmul(transA ? transpose(a, swap(a.rank)) : a, transB ? transpose(b, swap(b.rank)) : b);
  return alpha === 1 ? out : mul(out, alpha);
}

/** ONNX Gemm: alpha · op(A) · op(B) + beta · C, 2-D only. */
export function gemm(
  a: Value,
  b: Value,
  c: Value | null,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
): Value {
  const { transA = false, transB = false, alpha = 1, beta = 1 } = opts;
  if (a.rank !== 2 || b.rank !== 2) fail("Gemm", "needs 2-D operands", a, b);
  const shape = matmulShape("Gemm", a, b, transA, transB);
  if (c) broadcastShapes("Gemm", shape, c.shape);
  const attrs = {
    transA: attr.i(+transA),
    transB: attr.i(+transB),
    alpha: attr.f(alpha),
    beta: attr.f(beta),
  };
  return node("Gemm", c ? [a, b, c] : [a, b], attrs, { dtype: a.dtype, shape });
}

// ---------------------------------------------------------------- reductions and softmax

function reduce(op: string, x: Value, axes: number[], keepdims: boolean): Value {
  const ax = axes.map((a) => normAxis(op, a, x.rank));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!ax.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  const g = x.graph;
  return node(op, [x, i64(g, ax)], { keepdims: attr.i(keepdims ? 1 : 0) }, { dtype: x.dtype, shape });
}

export const reduceSum = (x: Value, axes: number[], keepdims = true) =>
  reduce("ReduceSum", x, axes, keepdims);
export const reduceMean = (x: Value, axes: number[], keepdims = true) =>
  reduce("ReduceMean", x, axes, keepdims);
export const reduceMax = (x: Value, axes: number[], keepdims = true) =>
  reduce("ReduceMax", x, axes, keepdims);
export const reduceProd = (x: Value, axes: number[], keepdims = true) =>
  reduce("ReduceProd", x, axes, keepdims);
export const reduceLogSumExp = (x: Value, axes: number[], keepdims = true) =>
  reduce("ReduceLogSumExp", x, axes, keepdims);

/**
 * ONNX SoftmaxCrossEntropyLoss over scores [N, C] and int64 labels [N]; labels equal to ignoreIndex
 * add nothing. reduction "sum" gives a scalar, "none" gives [N].
 */
export function softmaxCrossEntropy(
  scores: Value,
  labels: Value,
  opts: { reduction: "sum" | "mean" | "none"; ignoreIndex: number },
): Value {
  if (scores.rank !== 2 || labels.rank !== 1 || !dimEq(scores.dim(0), labels.dim(0))) {
    fail("SoftmaxCrossEntropyLoss", "needs scores [N, C] and labels [N]", scores, labels);
  }
  if (labels.dtype !== "int64") fail("SoftmaxCrossEntropyLoss", "labels must be int64", labels);
  const attrs = { reduction: attr.s(opts.reduction), ignore_index: attr.i(opts.ignoreIndex) };
  const shape = opts.reduction === "none" ? [scores.dim(0)] : [];
  return node("SoftmaxCrossEntropyLoss", [scores, labels], attrs, { dtype: scores.dtype, shape });
}

export function softmax(x: Value, axis = -1): Value {
  return unary("Softmax", x, "", { axis: attr.i(normAxis("Softmax", axis, x.rank)) });
}

export function logSoftmax(x: Value, axis = -1): Value {
  return unary("LogSoftmax", x, "", { axis: attr.i(normAxis("LogSoftmax", axis, x.rank)) });
}

// ---------------------------------------------------------------- shape manipulation

/**
 * Reshape to `dims` (numbers, symbolic dims, or one -1). Dims equal to the input's dim at the same
 * position are emitted as 0 ("copy"), one remaining unknown as -1, so most reshapes need no Shape op.
 */
export function reshape(x: Value, dims: Dim[]): Value {
  const inferIdx = dims.indexOf(-1);
  if (dims.filter((d) => d === -1).length > 1) fail("Reshape", "more than one -1", x);
  let out = [...dims];
  if (inferIdx >= 0) {
    const rest = numel(dims.filter((_, i) => i !== inferIdx));
    const q = divDims(numel(x.shape), rest);
    if (q === undefined) fail("Reshape", `cannot infer -1 in ${fmtShape(dims)}`, x);
    out[inferIdx] = q;
  } else if (!dimEq(numel(x.shape), numel(dims))) {
    fail("Reshape", `element count of ${fmtShape(dims)} differs from the input's`, x);
  }
  out = out.map((d) => (typeof d === "string" && /^\d+$/.test(d) ? Number(d) : d));
  // Encode: copy (0) where possible, literal numbers, then at most one -1, then runtime dims.
  const code: (number | null)[] = out.map((d, i) =>
    i < x.rank && dimEq(d, x.shape[i]!) ? 0 : typeof d === "number" ? d : null,
  );
  const unknown = code.flatMap((c, i) => (c === null ? [i] : []));
  if (code.some((c) => c === 0) && out.some((d) => d === 0))
    fail("Reshape", "zero-sized dims are not supported", x);
  let target: Value;
  if (unknown.length <= 1) {
    for (const i of unknown) code[i] = -1;
    target = i64(x.graph, code as number[]);
  } else {
    target = shapeTensor(
      x.graph,
      out.map((d, i) => (code[i] === 0 ? x.shape[i]! : d)),
    );
  }
  return node("Reshape", [x, target], {}, { dtype: x.dtype, shape: out });
}

/** Reshape x to the run-time shape of `like` (no symbolic lookup needed). */
export function reshapeAs(x: Value, like: Value): Value {
  if (!dimEq(numel(x.shape), numel(like.shape))) fail("Reshape", "element counts differ", x, like);
  return node("Reshape", [x, shapeOf(like)], {}, { dtype: x.dtype, shape: like.shape });
}

/** Broadcast x to the run-time shape of `like`. */
export function expandAs(x: Value, like: Value): Value {
  return node(
    "Expand",
    [x, shapeOf(like)],
    {},
    { dtype: x.dtype, shape: broadcastShapes("Expand", x.shape, like.shape) },
  );
}

/** Zero padding; `pads` is int64 [2·rank] (all begins, then all ends), `shape` the result's shape. */
export function pad(x: Value, pads: Value, shape: Shape): Value {
  return node("Pad", [x, pads], { mode: attr.s("constant") }, { dtype: x.dtype, shape });
}

export function transpose(x: Value, perm: number[]): Value {
  if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i))
    fail("Transpose", `bad perm [${perm}]`, x);
  return node(
    "Transpose",
    [x],
    { perm: attr.ints(perm) },
    { dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) },
  );
}

function slicedDim(d: Dim, start: number, end: number, step: number): Dim {
  if (typeof d === "number") {
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    const s = clamp(start < 0 ? start + d : start, step > 0 ? 0 : -1, step > 0 ? d : d - 1);
    const e = clamp(end < 0 ? end + d : end, step > 0 ? 0 : -1, step > 0 ? d : d - 1);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  if (step !== 1) throw new GraphBuildError(`Slice: step ${step} on symbolic dim ${d}`);
  if (start === 0 && end >= SLICE_END) return d;
  if (start < 0 && end >= SLICE_END) return -start;
  if (start >= 0 && end >= 0 && end < SLICE_END) return end - start;
  throw new GraphBuildError(`Slice: cannot size [${start}:${end}] of symbolic dim ${d}`);
}

/** x[starts:ends] along `axes` (static bounds; SLICE_END means to the end). */
export function slice(x: Value, starts: number[], ends: number[], axes: number[], steps?: number[]): Value {
  const ax = axes.map((a) => normAxis("Slice", a, x.rank));
  const shape = [...x.shape];
  ax.forEach((a, i) => {
    shape[a] = slicedDim(x.shape[a]!, starts[i]!, ends[i]!, steps?.[i] ?? 1);
  });
  const g = x.graph;
  const inputs = [x, i64(g, starts), i64(g, ends), i64(g, ax)];
  if (steps) inputs.push(i64(g, steps));
  return node("Slice", inputs, {}, { dtype: x.dtype, shape });
}

/**
 * xs joined along `axis`. `total` names the result's extent there when the parts' extents are symbols
 * whose sum has a name of its own (e.g. the chunks of `splitBy` put back together); by default it is
 * their sum.
 */
export function concat(xs: Value[], axis: number, total?: Dim): Value {
  const first = xs[0]!;
  const a = normAxis("Concat", axis, first.rank);
  for (const x of xs) {
    if (x.rank !== first.rank || x.dtype !== first.dtype) fail("Concat", "rank/dtype mismatch", ...xs);
    x.shape.forEach((d, i) => {
      if (i !== a && !dimEq(d, first.shape[i]!)) fail("Concat", `dim ${i} differs`, ...xs);
    });
  }
  const shape = [...first.shape];
  shape[a] = total ?? addDims(...xs.map((x) => x.shape[a]!));
  return node("Concat", xs, { axis: attr.i(a) }, { dtype: first.dtype, shape });
}

export function split(x: Value, axis: number, sizes: number[]): Value[] {
  const a = normAxis("Split", axis, x.rank);
  const total = sizes.reduce((s, v) => s + v, 0);
  if (!dimEq(x.shape[a]!, total)) fail("Split", `sizes [${sizes}] do not add up to dim ${x.shape[a]}`, x);
  const outs = sizes.map((s) => {
    const shape = [...x.shape];
    shape[a] = s;
    return { dtype: x.dtype, shape };
  });
  return x.graph.addNode("Split", [x, i64(x.graph, sizes)], { axis: attr.i(a) }, outs).outputs;
}

/**
 * x cut along `axis` into parts whose sizes are known at run time only: `sizes` is an int64 [parts]
 * tensor, and part i's extent on that axis is the new symbolic dim `dims[i]`.
 */
export function splitBy(x: Value, axis: number, sizes: Value, dims: string[]): Value[] {
  const a = normAxis("Split", axis, x.rank);
  if (sizes.dtype !== "int64" || sizes.rank !== 1 || !dimEq(sizes.shape[0]!, dims.length))
    fail("Split", `sizes must be int64 [${dims.length}]`, x, sizes);
  const outs = dims.map((d) => {
    const shape = [...x.shape];
    shape[a] = d;
    return { dtype: x.dtype, shape };
  });
  return x.graph.addNode("Split", [x, sizes], { axis: attr.i(a) }, outs).outputs;
}

export function unsqueeze(x: Value, axes: number[]): Value {
  const rank = x.rank + axes.length;
  const ax = axes.map((a) => normAxis("Unsqueeze", a, rank)).sort((p, q) => p - q);
  const shape: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[k++]!);
  return node("Unsqueeze", [x, i64(x.graph, ax)], {}, { dtype: x.dtype, shape });
}

export function squeeze(x: Value, axes: number[]): Value {
  const ax = axes.map((a) => normAxis("Squeeze", a, x.rank));
  for (const a of ax) if (x.shape[a] !== 1) fail("Squeeze", `dim ${a} is ${x.shape[a]}, not 1`, x);
  return node(
    "Squeeze",
    [x, i64(x.graph, ax)],
    {},
    { dtype: x.dtype, shape: x.shape.filter((_, i) => !ax.includes(i)) },
  );
}

/** Broadcast x to `dims` (which may be symbolic). */
export function expand(x: Value, dims: Dim[]): Value {
  const shape = broadcastShapes("Expand", x.shape, dims);
  // Where x already has the dim, 1 in the target keeps it without a runtime shape lookup.
  const off = dims.length - x.rank;
  const target = dims.map((d, i) => (i >= off && dimEq(x.shape[i - off]!, d) ? 1 : d));
  return node("Expand", [x, shapeTensor(x.graph, target)], {}, { dtype: x.dtype, shape });
}

// ---------------------------------------------------------------- indexing

export function gather(data: Value, indices: Value, axis = 0): Value {
  const a = normAxis("Gather", axis, data.rank);
  if (indices.dtype !== "int64" && indices.dtype !== "int32")
    fail("Gather", "indices must be int32/int64", indices);
  const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  return node("Gather", [data, indices], { axis: attr.i(a) }, { dtype: data.dtype, shape });
}

export function gatherElements(data: Value, indices: Value, axis: number): Value {
  const a = normAxis("GatherElements", axis, data.rank);
  if (indices.rank !== data.rank) fail("GatherElements", "indices rank must equal data rank", data, indices);
  return node(
    "GatherElements",
    [data, indices],
    { axis: attr.i(a) },
    { dtype: data.dtype, shape: indices.shape },
  );
}

/**
 * The coordinates of x's non-zero (true) elements, int64 [rank, count], in row-major order. `count`
 * names the number found, a symbolic dim known at run time only.
 */
export function nonZero(x: Value, count: string): Value {
  return node("NonZero", [x], {}, { dtype: "int64", shape: [x.rank, count] });
}

/**
 * data[i] for each index tuple i in the last dim of `indices` (batch_dims 0): the result is
 * [...indices.shape[:-1], ...data.shape[k:]] for tuples of length k (a static number).
 */
export function gatherND(data: Value, indices: Value): Value {
  if (indices.dtype !== "int64") fail("GatherND", "indices must be int64", data, indices);
  const k = indices.dim(-1);
  if (typeof k !== "number" || k < 1 || k > data.rank)
    fail("GatherND", "the index tuples' length must be a number from 1 to data's rank", data, indices);
  const shape = [...indices.shape.slice(0, -1), ...data.shape.slice(k)];
  return node("GatherND", [data, indices], {}, { dtype: data.dtype, shape });
}

export function scatterND(
  data: Value,
  indices: Value,
  updates: Value,
  reduction: "none" | "add" = "none",
): Value {
  const attrs: Record<string, Attr> = reduction === "none" ? {} : { reduction: attr.s(reduction) };
  return node("ScatterND", [data, indices, updates], attrs, { dtype: data.dtype, shape: data.shape });
}

export function scatterElements(
  data: Value,
  indices: Value,
  updates: Value,
  axis: number,
  reduction: "none" | "add" = "none",
): Value {
  const attrs: Record<string, Attr> = { axis: attr.i(normAxis("ScatterElements", axis, data.rank)) };
  if (reduction !== "none") attrs["reduction"] = attr.s(reduction);
  return node("ScatterElements", [data, indices, updates], attrs, { dtype: data.dtype, shape: data.shape });
}

export function shapeOf(x: Value): Value {
  return node("Shape", [x], {}, { dtype: "int64", shape: [x.rank] });
}

/** A tensor of `dims` filled with `value`; dims may be symbolic. */
export function fill(g: Graph, dims: Dim[], value: number, dtype: DType): Value {
  const t = { dtype, dims: [1], data: typedFor(dtype, [value]) };
  return node(
    "ConstantOfShape",
    [shapeTensor(g, dims)],
    { value: { kind: "tensor", v: t } },
    { dtype, shape: dims },
  );
}

/** Zeros shaped like x, sized from x at run time (so symbolic dims need no lookup). */
export function zerosLike(x: Value): Value {
  const t = { dtype: x.dtype, dims: [1], data: typedFor(x.dtype, [0]) };
  return node(
    "ConstantOfShape",
    [shapeOf(x)],
    { value: { kind: "tensor", v: t } },
    { dtype: x.dtype, shape: x.shape },
  );
}

/** 0, 1, ..., n-1 as int64 (n may be symbolic). */
export function range(g: Graph, n: Dim): Value {
  const limit = typeof n === "number" ? scalar(g, n, "int64") : squeeze(dimValue(g, n), [0]);
  return node(
    "Range",
    [scalar(g, 0, "int64"), limit, scalar(g, 1, "int64")],
    {},
    { dtype: "int64", shape: [n] },
  );
}

// ---------------------------------------------------------------- normalisation

/** ONNX LayerNormalization over the last axis; outputs [y, mean, invStdDev]. */
export function layerNorm(x: Value, scale: Value, bias: Value | null, epsilon = 1e-5): Value {
  if (!isFloat(x.dtype)) fail("LayerNormalization", "needs a float input", x);
  if (scale.rank !== 1 || !dimEq(scale.dim(0), x.dim(-1)))
    fail("LayerNormalization", "scale must be [hidden]", x, scale);
  // Mean and 1/σ come out in the stash type, float32 (ORT has no double stash kernel).
  const stat = { dtype: "float32" as DType, shape: [...x.shape.slice(0, -1), 1] };
  const inputs = bias ? [x, scale, bias] : [x, scale];
  const n = x.graph.addNode("LayerNormalization", inputs, { axis: attr.i(-1), epsilon: attr.f(epsilon) }, [
    { dtype: x.dtype, shape: x.shape },
    stat,
    stat,
  ]);
  return n.outputs[0]!;
}

/** RMSNorm, y = x / sqrt(mean(x²) + eps) · scale, as ORT's SimplifiedLayerNormalization. */
export function rmsNorm(x: Value, scale: Value, epsilon = 1e-6): Value {
  if (scale.rank !== 1 || !dimEq(scale.dim(0), x.dim(-1)))
    fail("RMSNorm", "scale must be [hidden]", x, scale);
  const stat = { dtype: "float32" as DType, shape: [...x.shape.slice(0, -1), 1] };
  const n = x.graph.addNode(
    "SimplifiedLayerNormalization",
    [x, scale],
    { axis: attr.i(-1), epsilon: attr.f(epsilon) },
    [{ dtype: x.dtype, shape: x.shape }, stat],
  );
  return n.outputs[0]!;
}

export { mulDims };
