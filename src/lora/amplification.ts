/**
 * How much an adapter amplifies directions of the base weight, as in section 7.3 of the LoRA paper
 * (Hu et al. 2021). Everything is in the [out, in] layout of a linear map x ↦ W·x: GPT-2's Conv1D
 * weight (stored [in, out], fan_in_fan_out) is transposed, and an embedding table E [vocab, dim] is
 * read as the map from one-hot token vectors, W = Eᵀ [dim, vocab], whose update is ΔW = s·B·A with
 * lora_embedding_A [r, vocab] and lora_embedding_B [dim, r] (merge.ts: ΔE = (s·B·A)ᵀ).
 *
 * With ΔW = s·B·A = U·Σ·Vᵀ (U [out, r], V [in, r], the top-r singular vectors):
 *
 *     ‖ΔW‖_F                       the size of the update (= √Σσ²)
 *     ‖UᵀWV‖_F                     W projected onto ΔW's r-dimensional subspaces (an r×r matrix)
 *     amplification = ‖ΔW‖_F / ‖UᵀWV‖_F
 *
 * A factor much larger than 1 means ΔW is large along directions that W itself hardly uses: the
 * paper finds ≈ 21 for Wq at r = 4 on GPT-3. The two references beside it:
 *
 *  - random: the same projection with r random orthonormal directions on each side, seeded. For
 *    uniformly random U [out, r] and V [in, r] with orthonormal columns, E[UUᵀ] = (r/out)·I and
 *    E[VVᵀ] = (r/in)·I, so E‖UᵀWV‖²_F = tr(E[UUᵀ]·W·E[VVᵀ]·Wᵀ) = ‖W‖²_F·r²/(out·in): its RMS is
 *    ‖W‖_F·r/√(out·in) (`randomExpected`).
 *  - W's own top-r directions (optional, an SVD of W): ‖U_WᵀWV_W‖_F = √(σ₁² + … + σ_r²) of W, the
 *    largest any r×r projection of W can be.
 *
 * ΔW's SVD never forms ΔW: with A's right singular vectors V_A [k_A, in] (svd.ts topSvd on the small
 * A), A = (A·V_Aᵀ)·V_A, so ΔW = C·V_A with C = s·B·A·V_Aᵀ [out, k_A]; C = U·Σ·V_Cᵀ (topSvd again)
 * gives ΔW = U·Σ·(V_Cᵀ·V_A). Cost O((out + in)·r²) instead of an SVD of the out×in product.
 * Directions with σ < RANK_TOLERANCE·σ₁ are dropped (a rank-deficient A or B): r is then ΔW's
 * numerical rank, and 0 for a zero ΔW (an untrained adapter's B = 0), where the factor is undefined.
 */

import type { HfModel } from "../models/assemble-model.js";
import { listModules } from "../models/modules.js";
import { LoraTsError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { type Adapter, loraKeys, validateAdapter } from "./adapter.js";
import {
  moduleMatches,
  orthonormalizeRows,
  RANK_TOLERANCE,
  refuseDora,
  rightSingularBasis,
} from "./subspace.js";
import { topSvd } from "./svd.js";

/** The top singular triplets of a low-rank product. */
export interface LowRankSvd {
  /** [k, out]: row t is the t-th left singular vector. */
  Urows: Float64Array;
  /** [k]: descending. */
  S: Float64Array;
  /** [k, in]: row t is the t-th right singular vector. */
  Vrows: Float64Array;
  k: number;
}

/** The SVD of s·B·A (A [r, in], B [out, r]) without forming it; see the file comment. */
export function lowRankDeltaSvd(
  A: Float32Array | Float64Array,
  B: Float32Array | Float64Array,
  r: number,
  fin: number,
  fout: number,
  s: number,
): LowRankSvd {
  if (A.length !== r * fin || B.length !== fout * r)
    throw new LoraTsError(`amplification: A [${r}, ${fin}] and B [${fout}, ${r}] do not match their data`);
  const va = rightSingularBasis(A, r, fin); // rows [kA, in]
  const kA = va.k;
  if (kA === 0)
    return { Urows: new Float64Array(0), S: new Float64Array(0), Vrows: new Float64Array(0), k: 0 };
  // AV = A·V_Aᵀ [r, kA], then C = s·B·AV [out, kA].
  const AV = new Float64Array(r * kA);
  for (let t = 0; t < r; t++) {
    for (let c = 0; c < kA; c++) {
      let sum = 0;
      for (let i = 0; i < fin; i++) sum += A[t * fin + i]! * va.rows[c * fin + i]!;
      AV[t * kA + c] = sum;
    }
  }
  const C = new Float64Array(fout * kA);
  for (let o = 0; o < fout; o++) {
    for (let c = 0; c < kA; c++) {
      let sum = 0;
      for (let t = 0; t < r; t++) sum += B[o * r + t]! * AV[t * kA + c]!;
      C[o * kA + c] = s * sum;
    }
  }
  const kMax = Math.min(fout, kA);
  const svd = topSvd(C, fout, kA, kMax);
  const s1 = svd.S[0] ?? 0;
  let k = 0;
  while (k < kMax && s1 > 0 && svd.S[k]! > RANK_TOLERANCE * s1) k++;
  const Urows = new Float64Array(k * fout);
  for (let t = 0; t < k; t++) for (let o = 0; o < fout; o++) Urows[t * fout + o] = svd.U[o * kMax + t]!;
  const Vrows = new Float64Array(k * fin);
  for (let t = 0; t < k; t++) {
    for (let c = 0; c < kA; c++) {
      const w = svd.Vt[t * kA + c]!;
      if (w === 0) continue;
      for (let i = 0; i < fin; i++) Vrows[t * fin + i]! += w * va.rows[c * fin + i]!;
    }
  }
  return { Urows, S: svd.S.slice(0, k), Vrows, k };
}

/** ‖UᵀWV‖_F for W [out, in] row-major, U given as k₁ rows [k₁, out], V as k₂ rows [k₂, in]. */
export function projectedNorm(
  W: Float32Array | Float64Array,
  fout: number,
  fin: number,
  Urows: Float64Array,
  k1: number,
  Vrows: Float64Array,
  k2: number,
): number {
  if (W.length !== fout * fin)
    throw new LoraTsError(`amplification: W has ${W.length} values, not ${fout}×${fin}`);
  // X = W·V [out, k₂], then Y = Uᵀ·X [k₁, k₂].
  const X = new Float64Array(fout * k2);
  for (let o = 0; o < fout; o++) {
    const wo = o * fin;
    for (let b = 0; b < k2; b++) {
      let sum = 0;
      const vb = b * fin;
      for (let i = 0; i < fin; i++) sum += W[wo + i]! * Vrows[vb + i]!;
      X[o * k2 + b] = sum;
    }
  }
  let sq = 0;
  for (let a = 0; a < k1; a++) {
    for (let b = 0; b < k2; b++) {
      let sum = 0;
      for (let o = 0; o < fout; o++) sum += Urows[a * fout + o]! * X[o * k2 + b]!;
      sq += sum * sum;
    }
  }
  return Math.sqrt(sq);
}

/** k random orthonormal vectors of ℝⁿ as rows [k, n] (Gaussian rows, orthonormalised): a uniformly random k-dimensional subspace. */
export function randomOrthonormalRows(n: number, k: number, rng: Rng): Float64Array {
  if (k > n) throw new LoraTsError(`amplification: ${k} orthonormal directions do not fit in ℝ^${n}`);
  for (;;) {
    const x = rng.fillNormal(new Float64Array(k * n)) as Float64Array;
    if (orthonormalizeRows(x, k, n) === k) return x;
  }
}

/** ‖W‖_F. */
export function frobenius(x: Float32Array | Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

export interface AmplificationResult {
  path: string;
  kind: "linear" | "embedding";
  /** The adapter's rank, and ΔW's numerical rank (the k used for every projection). */
  r: number;
  rank: number;
  in: number;
  out: number;
  /** s (alpha/r or alpha/√r). */
  scaling: number;
  wNorm: number;
  deltaNorm: number;
  /** ‖UᵀWV‖_F with ΔW's top singular vectors; null when ΔW is zero. */
  projNorm: number | null;
  /** ‖ΔW‖_F / ‖UᵀWV‖_F; null when ΔW is zero or W has no component there. */
  factor: number | null;
  /** ‖UᵀWV‖_F with random orthonormal U, V of the same size (seeded), and its expected RMS. */
  randomProjNorm: number;
  randomExpected: number;
  /** ‖U_WᵀWV_W‖_F with W's own top singular vectors (only with `wTop`). */
  wTopNorm?: number;
  note?: string;
}

/** The amplification numbers of one module, from W [out, in] and the adapter's A, B and s. */
export function amplification(
  W: Float32Array | Float64Array,
  A: Float32Array | Float64Array,
  B: Float32Array | Float64Array,
  dims: { r: number; in: number; out: number; scaling: number },
  opts: { rng?: Rng; wTop?: boolean } = {},
): Omit<AmplificationResult, "path" | "kind"> {
  const { r, in: fin, out: fout, scaling: s } = dims;
  const svd = lowRankDeltaSvd(A, B, r, fin, fout, s);
  const k = svd.k;
  let deltaSq = 0;
  for (const v of svd.S) deltaSq += v * v;
  const deltaNorm = Math.sqrt(deltaSq);
  const wNorm = frobenius(W);
  const projNorm = k > 0 ? projectedNorm(W, fout, fin, svd.Urows, k, svd.Vrows, k) : null;
  const kRand = k > 0 ? k : Math.min(r, fin, fout);
  const rng = opts.rng ?? new Rng(0);
  const ru = randomOrthonormalRows(fout, kRand, rng);
  const rv = randomOrthonormalRows(fin, kRand, rng);
  const randomProjNorm = projectedNorm(W, fout, fin, ru, kRand, rv, kRand);
  const result: Omit<AmplificationResult, "path" | "kind"> = {
    r,
    rank: k,
    in: fin,
    out: fout,
    scaling: s,
    wNorm,
    deltaNorm,
    projNorm,
    factor: projNorm !== null && projNorm > 0 ? deltaNorm / projNorm : null,
    randomProjNorm,
    randomExpected: (wNorm * kRand) / Math.sqrt(fout * fin),
  };
  if (opts.wTop) {
    const top = topSvd(W, fout, fin, kRand);
    let sq = 0;
    for (const v of top.S) sq += v * v;
    result.wTopNorm = Math.sqrt(sq);
  }
  if (k === 0) result.note = "ΔW is zero (B = 0: an untrained adapter?)";
  else if (k < r) result.note = `ΔW has numerical rank ${k} < r ${r}`;
  return result;
}

/**
 * W [out, in] of one adapted module, read from the model and put in the [out, in] layout: Conv1D
 * weights ([in, out]) and embedding tables ([vocab, dim]) are transposed.
 */
export function weightOutIn(
  model: HfModel,
  path: string,
  layout: { kind: "linear" | "embedding"; fanInFanOut: boolean; in: number; out: number },
): Float32Array {
  const name = `${path}.weight`;
  const stored = model.weights.readFloat32(name);
  const transpose = layout.kind === "embedding" || layout.fanInFanOut;
  const shape = model.weights.info(name).shape;
  const want = transpose ? [layout.in, layout.out] : [layout.out, layout.in];
  if (shape.length !== 2 || shape[0] !== want[0] || shape[1] !== want[1])
    throw new LoraTsError(
      `${name}: shape [${shape.join(", ")}], expected [${want.join(", ")}] for the adapter`,
    );
  if (!transpose) return stored;
  const [rows, cols] = want as [number, number];
  const out = new Float32Array(stored.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = stored[i * cols + j]!;
  return out;
}

/**
 * The amplification of every module the adapter adapts on `model` (optionally only those a
 * --module filter selects: full path or short name). The adapter is checked against the model
 * first (validateAdapter). Random directions are seeded per module from `seed` and the module path,
 * so a module's numbers do not depend on the filter.
 */
export function adapterAmplification(
  model: HfModel,
  adapter: Adapter,
  opts: { module?: string; seed?: number; wTop?: boolean } = {},
): AmplificationResult[] {
  refuseDora(adapter, "amplification");
  const selected = validateAdapter(adapter, listModules(model.config), { modelType: model.config.modelType });
  const out: AmplificationResult[] = [];
  for (const m of selected) {
    if (opts.module !== undefined && !moduleMatches(m.path, opts.module)) continue;
    const keys = loraKeys(m.path, m.kind);
    const A = adapter.tensors.get(keys.A)!.data;
    const B = adapter.tensors.get(keys.B)!.data;
    const W = weightOutIn(model, m.path, m);
    const res = amplification(
      W,
      A,
      B,
      { r: m.r, in: m.in, out: m.out, scaling: m.scaling },
      { rng: new Rng(`${opts.seed ?? 0}:${m.path}`), wTop: opts.wTop },
    );
    out.push({ path: m.path, kind: m.kind, ...res });
  }
  return out;
}
