/**
 * Subspace similarity between adapters, as in section 7.2 of the LoRA paper (Hu et al. 2021).
 *
 * An adapter's A [r, d] maps the module's d-dimensional input space (a linear layer's in features;
 * an embedding's vocabulary, for lora_embedding_A [r, vocab]) to r dimensions. With the SVD
 * A = U_A·Σ·Vᵀ, the top-i right singular vectors V_i = [v₁ … v_i] ∈ ℝ^{d×i} span the i input
 * directions A responds to most. For two adapters (A₁ of rank r₁, A₂ of rank r₂) the normalized
 * subspace similarity is
 *
 *     φ(A₁, A₂, i, j) = ‖V₁,ᵢᵀ · V₂,ⱼ‖²_F / min(i, j)        i = 1..r₁, j = 1..r₂
 *                     = (Σ_k cos² θ_k) / min(i, j)
 *
 * where θ_k are the principal angles between span(V₁,ᵢ) and span(V₂,ⱼ) (the singular values of
 * V₁,ᵢᵀ·V₂,ⱼ are their cosines). φ lies in [0, 1]: 1 when the smaller subspace lies inside the
 * larger, 0 when they are orthogonal.
 *
 * Chance level: for independent uniformly random subspaces of ℝ^d, E[V_iV_iᵀ] = (i/d)·I, so
 * E‖V₁,ᵢᵀV₂,ⱼ‖²_F = tr(E[P_i]·E[P_j]) = i·j/d and E[φ(i, j)] = max(i, j)/d.
 *
 * φ depends only on the nested subspaces span(V_1) ⊂ span(V_2) ⊂ …, so it is unchanged by scaling A
 * (A → c·A) and by an orthogonal change of basis in the rank space (A → Q·A: AᵀA is the same).
 *
 * The singular vectors come from the project's SVD (svd.ts topSvd, float64, exact path: A is small).
 * Its vectors are then re-orthonormalised in order (Gram-Schmidt, twice), which leaves every
 * span(V_i) as it is and makes φ(i, i) of an adapter against itself 1 to rounding. Directions whose
 * singular value is below RANK_TOLERANCE·σ₁ (a rank-deficient A, e.g. one zero-padded by
 * `combine`) have no defined direction and are left out: the grid then stops at A's numerical rank.
 */
import { LoraTsError } from "../util/errors.js";
import { type Adapter, parseAdapterKey } from "./adapter.js";
import { topSvd } from "./svd.js";

/** Singular values below this fraction of the largest are treated as zero (numerical rank). */
export const RANK_TOLERANCE = 1e-6;

/** Orthonormal rows: the top right singular vectors of a matrix, and its singular values. */
export interface RowBasis {
  /** [k, d] row-major; row t is the t-th right singular vector (σ descending). */
  rows: Float64Array;
  k: number;
  d: number;
  /** The singular values, descending (all min(r, d) of them, including those left out of `rows`). */
  sigma: Float64Array;
}

/**
 * Orthonormalises the rows of `x` [k, d] in place, in order (modified Gram-Schmidt, two passes), so
 * that span(rows 0..t) is unchanged for every t. Returns the number of rows kept: a row that is
 * (numerically) in the span of the earlier ones ends the basis there.
 */
export function orthonormalizeRows(x: Float64Array, k: number, d: number): number {
  for (let t = 0; t < k; t++) {
    const o = t * d;
    let before = 0;
    for (let c = 0; c < d; c++) before += x[o + c]! * x[o + c]!;
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < t; p++) {
        const q = p * d;
        let s = 0;
        for (let c = 0; c < d; c++) s += x[o + c]! * x[q + c]!;
        for (let c = 0; c < d; c++) x[o + c]! -= s * x[q + c]!;
      }
    }
    let after = 0;
    for (let c = 0; c < d; c++) after += x[o + c]! * x[o + c]!;
    if (!(after > 1e-20 * before) || after === 0) return t;
    const inv = 1 / Math.sqrt(after);
    for (let c = 0; c < d; c++) x[o + c]! *= inv;
  }
  return k;
}

/**
 * The right singular vectors of A [r, d] with non-negligible singular values (σ > RANK_TOLERANCE·σ₁),
 * as orthonormal rows. A zero A has none (k = 0).
 */
export function rightSingularBasis(A: Float32Array | Float64Array, r: number, d: number): RowBasis {
  if (A.length !== r * d) throw new LoraTsError(`subspace: A has ${A.length} values, not ${r}×${d}`);
  const kMax = Math.min(r, d);
  const svd = topSvd(A, r, d, kMax);
  const s1 = svd.S[0] ?? 0;
  let k = 0;
  while (k < kMax && s1 > 0 && svd.S[k]! > RANK_TOLERANCE * s1) k++;
  const rows = svd.Vt.slice(0, k * d);
  const kept = orthonormalizeRows(rows, k, d);
  return { rows: rows.subarray(0, kept * d), k: kept, d, sigma: svd.S };
}

/** M = V₁·V₂ᵀ [k₁, k₂]: the inner products of the basis vectors (M[a, b] = v₁,ₐ · v₂,ᵦ). */
export function basisOverlap(b1: RowBasis, b2: RowBasis): Float64Array {
  if (b1.d !== b2.d)
    throw new LoraTsError(`subspace: input dimensions differ (${b1.d} and ${b2.d}): nothing to compare`);
  const d = b1.d;
  const m = new Float64Array(b1.k * b2.k);
  for (let a = 0; a < b1.k; a++) {
    for (let b = 0; b < b2.k; b++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += b1.rows[a * d + c]! * b2.rows[b * d + c]!;
      m[a * b2.k + b] = s;
    }
  }
  return m;
}

/**
 * φ(i, j) = ‖V₁,ᵢᵀV₂,ⱼ‖²_F / min(i, j) for i = 1..k₁, j = 1..k₂, as rows phi[i-1][j-1]. The squared
 * norm of the top-left i×j block of M = V₁·V₂ᵀ is a 2-D prefix sum of M², so the whole grid costs one
 * k₁×k₂×d product.
 */
export function subspaceSimilarity(b1: RowBasis, b2: RowBasis): number[][] {
  const m = basisOverlap(b1, b2);
  const k1 = b1.k;
  const k2 = b2.k;
  const prefix = new Float64Array((k1 + 1) * (k2 + 1)); // prefix[i][j] = Σ_{a<i, b<j} M[a, b]²
  const w = k2 + 1;
  for (let i = 1; i <= k1; i++) {
    for (let j = 1; j <= k2; j++) {
      const v = m[(i - 1) * k2 + (j - 1)]!;
      prefix[i * w + j] =
        v * v + prefix[(i - 1) * w + j]! + prefix[i * w + j - 1]! - prefix[(i - 1) * w + j - 1]!;
    }
  }
  const phi: number[][] = [];
  for (let i = 1; i <= k1; i++) {
    const row: number[] = [];
    for (let j = 1; j <= k2; j++) row.push(prefix[i * w + j]! / Math.min(i, j));
    phi.push(row);
  }
  return phi;
}

/** φ between two A matrices ([r₁, d] and [r₂, d], row-major). */
export function phiMatrix(
  A1: Float32Array | Float64Array,
  r1: number,
  A2: Float32Array | Float64Array,
  r2: number,
  d: number,
): number[][] {
  return subspaceSimilarity(rightSingularBasis(A1, r1, d), rightSingularBasis(A2, r2, d));
}

/**
 * The cosines of the principal angles between span(V₁,ᵢ) and span(V₂,ⱼ) (first i rows of b1, first j
 * of b2), descending: the singular values of the i×j block of V₁·V₂ᵀ. Σ cos² = ‖V₁,ᵢᵀV₂,ⱼ‖²_F.
 */
export function principalCosines(b1: RowBasis, b2: RowBasis, i = b1.k, j = b2.k): number[] {
  if (i < 1 || j < 1 || i > b1.k || j > b2.k)
    throw new LoraTsError(`principal angles: i=${i}, j=${j} must be in 1..${b1.k} and 1..${b2.k}`);
  const m = basisOverlap(b1, b2);
  const block = new Float64Array(i * j);
  for (let a = 0; a < i; a++) for (let b = 0; b < j; b++) block[a * j + b] = m[a * b2.k + b]!;
  const { S } = topSvd(block, i, j, Math.min(i, j));
  // Rounding can put a cosine a hair above 1.
  return Array.from(S, (c) => Math.min(1, c));
}

/** E[φ(i, j)] for independent random subspaces of ℝ^d: max(i, j)/d. */
export function chancePhi(i: number, j: number, d: number): number {
  return Math.max(i, j) / d;
}

/** The mean of a grid of numbers (φ over all (i, j)). */
export function gridMean(grid: readonly (readonly number[])[]): number {
  let s = 0;
  let n = 0;
  for (const row of grid) {
    for (const v of row) s += v;
    n += row.length;
  }
  return n === 0 ? Number.NaN : s / n;
}

/** One module's A as an adapter holds it: the PEFT path, linear or embedding, and A [r, d]. */
export interface AdapterA {
  path: string;
  kind: "linear" | "embedding";
  r: number;
  d: number;
  data: Float32Array;
}

/** The A matrices of an adapter, by module path (lora_A [r, in] and lora_embedding_A [r, vocab]). */
export function adapterAMatrices(adapter: Adapter): Map<string, AdapterA> {
  const out = new Map<string, AdapterA>();
  const src = adapter.source ? `${adapter.source}: ` : "";
  for (const [key, t] of adapter.tensors) {
    const p = parseAdapterKey(key);
    if (p.role !== "A" || !p.kind) continue;
    if (t.shape.length !== 2 || t.shape[0]! < 1 || t.shape[1]! < 1)
      throw new LoraTsError(
        `${src}tensor ${JSON.stringify(key)}: shape [${t.shape.join(", ")}] is not [r, in]`,
      );
    out.set(p.path, { path: p.path, kind: p.kind, r: t.shape[0]!, d: t.shape[1]!, data: t.data });
  }
  return out;
}

/**
 * Refuses a DoRA adapter (use_dora) in one line. Its update is (m/n − 1) ⊙ W + (m/n) ⊙ s·B·A, whose
 * input subspace is not A's and whose rank is not r, so section 7's analyses, read from A and B
 * alone, would describe an update the adapter does not make.
 */
export function refuseDora(adapter: Adapter, analysis: string): void {
  if (adapter.config.use_dora)
    throw new LoraTsError(
      `${adapter.source ?? "adapter"}: a DoRA adapter (use_dora); the ${analysis} analysis reads s·B·A alone and would ignore its magnitudes, so it is not supported`,
    );
}

/**
 * Whether `path` is selected by a --module filter: the full path, or its trailing components
 * ("q_proj", "self_attn.q_proj"), never part of a component ("proj" selects nothing).
 */
export function moduleMatches(path: string, filter: string): boolean {
  return path === filter || path.endsWith(`.${filter}`);
}

export interface SubspaceResult {
  path: string;
  kind: "linear" | "embedding";
  /** The input dimension d (in features, or the vocabulary for an embedding). */
  d: number;
  /** The adapters' ranks (rows of A). */
  r1: number;
  r2: number;
  /** φ[i-1][j-1]; its size is the numerical ranks (k₁ × k₂), which are r₁ × r₂ unless A is rank-deficient. */
  phi: number[][];
  /** Mean of φ over the grid, and of the chance level max(i, j)/d over the same grid. */
  mean: number;
  chanceMean: number;
  /** Why the grid is smaller than r₁ × r₂, when it is. */
  note?: string;
}

export interface SubspaceComparison {
  modules: SubspaceResult[];
  /** Adapted in one adapter only (after the filter): reported, not compared. */
  onlyA: string[];
  onlyB: string[];
  /** Adapted in both but not comparable (different kind or input size), with the reason. */
  skipped: { path: string; reason: string }[];
}

/** φ for every module adapted in both adapters (matched by module path), optionally filtered. */
export function compareAdapterSubspaces(
  a: Adapter,
  b: Adapter,
  opts: { module?: string } = {},
): SubspaceComparison {
  refuseDora(a, "subspace");
  refuseDora(b, "subspace");
  const keep = (p: string) => opts.module === undefined || moduleMatches(p, opts.module);
  const ma = new Map([...adapterAMatrices(a)].filter(([p]) => keep(p)));
  const mb = new Map([...adapterAMatrices(b)].filter(([p]) => keep(p)));
  const result: SubspaceComparison = {
    modules: [],
    onlyA: [...ma.keys()].filter((p) => !mb.has(p)),
    onlyB: [...mb.keys()].filter((p) => !ma.has(p)),
    skipped: [],
  };
  for (const [path, x] of ma) {
    const y = mb.get(path);
    if (!y) continue;
    if (x.kind !== y.kind || x.d !== y.d) {
      result.skipped.push({
        path,
        reason: `A is ${x.kind} [${x.r}, ${x.d}] in one adapter and ${y.kind} [${y.r}, ${y.d}] in the other`,
      });
      continue;
    }
    const b1 = rightSingularBasis(x.data, x.r, x.d);
    const b2 = rightSingularBasis(y.data, y.r, y.d);
    if (b1.k === 0 || b2.k === 0) {
      result.skipped.push({
        path,
        reason: `lora_A is zero in ${b1.k === 0 ? "the first" : "the second"} adapter`,
      });
      continue;
    }
    const phi = subspaceSimilarity(b1, b2);
    let chance = 0;
    for (let i = 1; i <= b1.k; i++) for (let j = 1; j <= b2.k; j++) chance += chancePhi(i, j, x.d);
    const notes: string[] = [];
    if (b1.k < x.r) notes.push(`A₁ has numerical rank ${b1.k} < r ${x.r}`);
    if (b2.k < y.r) notes.push(`A₂ has numerical rank ${b2.k} < r ${y.r}`);
    result.modules.push({
      path,
      kind: x.kind,
      d: x.d,
      r1: x.r,
      r2: y.r,
      phi,
      mean: gridMean(phi),
      chanceMean: chance / (b1.k * b2.k),
      ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
    });
  }
  return result;
}
