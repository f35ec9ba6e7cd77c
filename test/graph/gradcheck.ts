/**
 * Finite-difference gradient checking. A graph f(inputs) is reduced to a scalar
 * L = Σ f(inputs) · P with a fixed random projection P, its gradient is derived by `grad`, and
 * each analytic partial derivative is compared with a central difference of L on sampled coordinates:
 * (L(x + ε) - L(x - ε)) / 2ε, or the five-point stencil
 * (-L(x + 2ε) + 8L(x + ε) - 8L(x - ε) + L(x - 2ε)) / 12ε, whose O(ε⁴) truncation error lets a float32
 * op be checked with a step large enough to drown its rounding noise.
 *
 * Inputs may declare symbolic dims (`dims: ["batch", 3]`): the graph is then built with those
 * symbols, as training graphs are, and fed tensors of the concrete `shape`.
 */
import type { AnyTypedArray, DType } from "../../src/graph/dtype.js";
import { emitModel } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { Session, type TensorValue } from "../../src/graph/runtime.js";
import type { Dim } from "../../src/graph/shape.js";

export interface InputSpec {
  /** The concrete extent fed at run time. */
  shape: number[];
  /**
   * The graph input's declared shape, when it differs from `shape` by naming symbolic dims
   * (e.g. ["batch", "seq", 4] for shape [2, 3, 4]); numbers here must equal `shape`'s.
   * Not for "const" inputs (initializers have static shapes).
   */
  dims?: Dim[];
  /** "float" inputs are differentiated; "int64" inputs are fixed (ids, labels). */
  kind?: "float" | "int64" | "const";
  /** Values; random N(0,1)·scale when absent for floats. */
  values?: number[];
  scale?: number;
  /** Shift added to random floats (e.g. to keep Log/Sqrt inputs positive). */
  offset?: number;
}

export interface CheckOptions {
  dtype: "float32" | "float64";
  eps?: number;
  rtol?: number;
  atol?: number;
  /**
   * 3: (L(x+ε) - L(x-ε)) / 2ε (default for float64); 5: the five-point stencil (default for float32).
   * With 5, every x ± ε, x ± 2ε must be exact in the dtype (random float32 inputs are drawn on a
   * 2⁻¹² grid, so a step that is a multiple of 2⁻¹² is).
   */
  stencil?: 3 | 5;
  /** Coordinates sampled per input. */
  samples?: number;
  seed?: number;
}

export interface CheckResult {
  maxAbsErr: number;
  maxRelErr: number;
  checked: number;
  worst: string;
  /** The largest |err| / (atol + rtol·|g|) seen: how much of the tolerance the check used (< 1). */
  tolUsed: number;
  /** The graph that was checked (forward and backward nodes), for assertions about its structure. */
  graph: Graph;
}

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(rand: () => number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = Math.max(rand(), 1e-12);
    out.push(Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand()));
  }
  return out;
}

function typed(dtype: DType, values: number[]): AnyTypedArray {
  if (dtype === "float64") return Float64Array.from(values);
  if (dtype === "int64") return BigInt64Array.from(values.map((v) => BigInt(v)));
  return Float32Array.from(values);
}

/** The value a feed of `dtype` actually holds. */
function stored(dtype: DType, v: number): number {
  return dtype === "float32" ? Math.fround(v) : v;
}

/** Random float32 inputs sit on this grid, so that x + k·ε is exact for a step ε on it. */
const F32_GRID = 2 ** -12;

/** The five-point stencil's offsets (in steps ε) and weights (times 1/ε). */
const FIVE_POINT = [
  [-2, 1 / 12],
  [-1, -8 / 12],
  [1, 8 / 12],
  [2, -1 / 12],
] as const;

export async function checkGradient(
  build: (...xs: Value[]) => Value,
  specs: InputSpec[],
  opts: CheckOptions,
): Promise<CheckResult> {
  const { dtype, seed = 1, samples = 10 } = opts;
  const f32 = dtype === "float32";
  const stencil = opts.stencil ?? (f32 ? 5 : 3);
  // float32 defaults: a five-point stencil with ε = 2⁻⁴ has truncation error ε⁴/30·|f⁽⁵⁾| ≈ 2e-6·|f⁽⁵⁾|
  // and rounding noise ~(18/12)·(a few ulp of f·P)/ε, a few 1e-6 for |f·P| ~ 1. The smooth float32
  // cases of grad-rules.test.ts measure at most 6e-6, under a third of 1e-5 + 1e-4·|g|.
  const eps = opts.eps ?? (f32 ? 2 ** -4 : 1e-6);
  const rtol = opts.rtol ?? (f32 ? 1e-4 : 1e-6);
  const atol = opts.atol ?? (f32 ? 1e-5 : 1e-8);
  const rand = rng(seed);

  for (const s of specs) {
    if (!s.dims) continue;
    if (s.kind === "const") throw new Error("gradcheck: a const input cannot have symbolic dims");
    if (s.dims.length !== s.shape.length || s.dims.some((d, i) => typeof d === "number" && d !== s.shape[i]))
      throw new Error(`gradcheck: dims [${s.dims}] do not fit shape [${s.shape}]`);
  }

  const g = new Graph();
  const values: number[][] = specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.values) return s.values;
    const v = randn(rand, n).map((v) => v * (s.scale ?? 1) + (s.offset ?? 0));
    return f32 && s.kind !== "int64" ? v.map((x) => Math.round(x / F32_GRID) * F32_GRID) : v;
  });
  const inputs = specs.map((s, i) =>
    s.kind === "const"
      ? g.initializer(`c${i}`, dtype, s.shape, { kind: "data", data: typed(dtype, values[i]!) })
      : g.input(`x${i}`, s.kind === "int64" ? "int64" : dtype, s.dims ?? s.shape),
  );
  const out = build(...inputs);

  const feeds = (vals: number[][]): Record<string, TensorValue> => {
    const f: Record<string, TensorValue> = {};
    specs.forEach((s, i) => {
      if (s.kind === "const") return;
      const dt: DType = s.kind === "int64" ? "int64" : dtype;
      f[`x${i}`] = { dtype: dt, dims: s.shape, data: typed(dt, vals[i]!) };
    });
    return f;
  };

  // The projection is a graph input shaped like the output (symbols included); its concrete extent
  // comes from a forward-only run when the output's shape is symbolic.
  let outShape: number[];
  if (out.shape.every((d) => typeof d === "number")) outShape = out.shape as number[];
  else {
    g.output(out, "y");
    const fwd = await Session.create(emitModel(g), { optimization: "disabled", threads: 1 });
    outShape = (await fwd.run(feeds(values), ["y"]))["y"]!.dims;
    await fwd.release();
  }
  const outN = outShape.reduce((a, b) => a * b, 1);
  // float32-exact values, so the float64 copy used for the loss equals the float32 one the gradient sees.
  const projValues = randn(rand, outN).map((v) => stored(out.dtype, v));
  const proj = g.input("proj", out.dtype, out.shape);
  const prod = o.mul(out, proj);
  // The loss is accumulated in float64 from the op's own (possibly float32) outputs: Σ f·P adds no
  // rounding of its own beyond float64's, so what the differences see is the op's rounding alone.
  const loss = o.reduceSum(
    o.mul(o.cast(out, "float64"), o.cast(proj, "float64")),
    [...Array(out.rank).keys()],
    false,
  );
  const diffIdx = specs.flatMap((s, i) => (s.kind === undefined || s.kind === "float" ? [i] : []));
  const grads = grad(
    o.reduceSum(prod, [...Array(out.rank).keys()], false),
    diffIdx.map((i) => inputs[i]!),
  );
  g.output(loss, "loss");
  for (const [k, gv] of grads.entries()) g.output(gv, `grad${k}`);
  const session = await Session.create(emitModel(g), { optimization: "disabled", threads: 1 });

  const projFeed: TensorValue = { dtype: out.dtype, dims: outShape, data: typed(out.dtype, projValues) };
  const run = (vals: number[][], names?: string[]) => session.run({ ...feeds(vals), proj: projFeed }, names);
  const base = await run(values);
  const lossAt = async (vals: number[][]) => (await run(vals, ["loss"]))["loss"]!.data[0] as number;

  let maxAbsErr = 0;
  let maxRelErr = 0;
  let checked = 0;
  let worst = "";
  let tolUsed = 0;
  const fail = async (msg: string): Promise<never> => {
    await session.release();
    throw new Error(msg);
  };
  for (const [k, i] of diffIdx.entries()) {
    const got = base[`grad${k}`]!;
    // A gradient must come back in its input's dtype and shape (a rule that forgot a Cast or a
    // sumToShape can still hold the right numbers).
    if (got.dtype !== dtype || got.dims.join() !== specs[i]!.shape.join())
      await fail(
        `gradient of input ${i} is ${got.dtype}[${got.dims}], expected ${dtype}[${specs[i]!.shape}]`,
      );
    const analytic = got.data as Float32Array | Float64Array;
    const n = values[i]!.length;
    const coords =
      n <= samples ? [...Array(n).keys()] : [...Array(samples)].map(() => Math.floor(rand() * n));
    for (const c of coords) {
      const x = stored(dtype, values[i]![c]!);
      let numeric: number;
      if (stencil === 3) {
        // Divide by the step the feeds really took (x ± ε rounded to the dtype), not by 2ε.
        const hi = stored(dtype, x + eps);
        const lo = stored(dtype, x - eps);
        const at = (v: number) => values.map((vs, j) => (j === i ? vs.map((e, m) => (m === c ? v : e)) : vs));
        numeric = ((await lossAt(at(hi))) - (await lossAt(at(lo)))) / (hi - lo);
      } else {
        numeric = 0;
        for (const [step, w] of FIVE_POINT) {
          const v = x + step * eps;
          if (stored(dtype, v) !== v)
            await fail(`gradcheck: x + ${step}ε = ${v} is not exact in ${dtype} (input ${i} coord ${c})`);
          const vals = values.map((vs, j) => (j === i ? vs.map((e, m) => (m === c ? v : e)) : vs));
          numeric += (w * (await lossAt(vals))) / eps;
        }
      }
      const a = analytic[c]!;
      const err = Math.abs(a - numeric);
      const rel = err / Math.max(Math.abs(a), Math.abs(numeric), 1e-12);
      checked++;
      if (err > maxAbsErr) maxAbsErr = err;
      if (err > atol && rel > maxRelErr) {
        maxRelErr = rel;
        worst = `input ${i} coord ${c}: analytic ${a}, numeric ${numeric}`;
      }
      const tol = atol + rtol * Math.max(Math.abs(a), Math.abs(numeric));
      tolUsed = Math.max(tolUsed, err / tol);
      if (!(err <= tol)) {
        await fail(
          `gradient mismatch at input ${i} coord ${c} (x = ${x}): analytic ${a}, numeric ${numeric} (|err| ${err})`,
        );
      }
    }
  }
  await session.release();
  return { maxAbsErr, maxRelErr, checked, worst, tolUsed, graph: g };
}
