/**
 * Finite-difference gradient checking. A graph f(inputs) is reduced to a scalar
 * L = Σ f(inputs) · P with a fixed random projection P, its gradient is derived by `grad`, and
 * each analytic partial derivative is compared with (L(x + ε) - L(x - ε)) / 2ε on sampled coordinates.
 */
import type { AnyTypedArray, DType } from "../../src/graph/dtype.js";
import { emitModel } from "../../src/graph/emit.js";
import { grad } from "../../src/graph/grad.js";
import { Graph, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { Session, type TensorValue } from "../../src/graph/runtime.js";

export interface InputSpec {
  shape: number[];
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
  /** Coordinates sampled per input. */
  samples?: number;
  seed?: number;
}

export interface CheckResult {
  maxAbsErr: number;
  maxRelErr: number;
  checked: number;
  worst: string;
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

export async function checkGradient(
  build: (...xs: Value[]) => Value,
  specs: InputSpec[],
  opts: CheckOptions,
): Promise<CheckResult> {
  const { dtype, seed = 1, samples = 10 } = opts;
  const eps = opts.eps ?? (dtype === "float64" ? 1e-6 : 1e-2);
  const rtol = opts.rtol ?? (dtype === "float64" ? 1e-6 : 2e-2);
  const atol = opts.atol ?? (dtype === "float64" ? 1e-8 : 2e-3);
  const rand = rng(seed);

  const g = new Graph();
  const values: number[][] = specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.values) return s.values;
    return randn(rand, n).map((v) => v * (s.scale ?? 1) + (s.offset ?? 0));
  });
  const inputs = specs.map((s, i) =>
    s.kind === "const"
      ? g.initializer(`c${i}`, dtype, s.shape, { kind: "data", data: typed(dtype, values[i]!) })
      : g.input(`x${i}`, s.kind === "int64" ? "int64" : dtype, s.shape),
  );
  const out = build(...inputs);
  const outShape = out.shape as number[];
  const outN = outShape.reduce((a, b) => a * b, 1);
  const proj = g.initializer("proj", out.dtype, outShape, {
    kind: "data",
    data: typed(out.dtype, randn(rand, outN)),
  });
  // Accumulate the projection in float64 where the op itself ran in float32, to keep FD noise low.
  const prod = o.mul(out, proj);
  const loss = o.reduceSum(o.cast(prod, "float64"), [...Array(out.rank).keys()], false);
  const diffIdx = specs.flatMap((s, i) => (s.kind === undefined || s.kind === "float" ? [i] : []));
  const grads = grad(
    o.reduceSum(prod, [...Array(out.rank).keys()], false),
    diffIdx.map((i) => inputs[i]!),
  );
  g.output(loss, "loss");
  for (const [k, gv] of grads.entries()) g.output(gv, `grad${k}`);
  const session = await Session.create(emitModel(g), { optimization: "disabled", threads: 1 });

  const feeds = (vals: number[][]): Record<string, TensorValue> => {
    const f: Record<string, TensorValue> = {};
    specs.forEach((s, i) => {
      if (s.kind === "const") return;
      const dt: DType = s.kind === "int64" ? "int64" : dtype;
      f[`x${i}`] = { dtype: dt, dims: s.shape, data: typed(dt, vals[i]!) };
    });
    return f;
  };
  const base = await session.run(feeds(values));
  const lossAt = async (vals: number[][]) =>
    (await session.run(feeds(vals), ["loss"]))["loss"]!.data[0] as number;

  let maxAbsErr = 0;
  let maxRelErr = 0;
  let checked = 0;
  let worst = "";
  for (const [k, i] of diffIdx.entries()) {
    const analytic = base[`grad${k}`]!.data as Float32Array | Float64Array;
    const n = values[i]!.length;
    const coords =
      n <= samples ? [...Array(n).keys()] : [...Array(samples)].map(() => Math.floor(rand() * n));
    for (const c of coords) {
      const plus = values.map((v) => [...v]);
      const minus = values.map((v) => [...v]);
      plus[i]![c]! += eps;
      minus[i]![c]! -= eps;
      const numeric = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * eps);
      const a = analytic[c]!;
      const err = Math.abs(a - numeric);
      const rel = err / Math.max(Math.abs(a), Math.abs(numeric), 1e-12);
      checked++;
      if (err > maxAbsErr) maxAbsErr = err;
      if (err > atol && rel > maxRelErr) {
        maxRelErr = rel;
        worst = `input ${i} coord ${c}: analytic ${a}, numeric ${numeric}`;
      }
      if (!(err <= atol + rtol * Math.max(Math.abs(a), Math.abs(numeric)))) {
        await session.release();
        throw new Error(
          `gradient mismatch at input ${i} coord ${c}: analytic ${a}, numeric ${numeric} (|err| ${err})`,
        );
      }
    }
  }
  await session.release();
  return { maxAbsErr, maxRelErr, checked, worst };
}
