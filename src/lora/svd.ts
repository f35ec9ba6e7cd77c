/**
 * The top-k singular triplets of a dense matrix, for PiSSA initialisation. Float64 throughout.
 *
 * Exact path (PEFT's "pissa", torch.linalg.svd): form the Gram matrix of the smaller side
 * (G = M·Mᵀ, d×d with d = min(rows, cols)), reduce it to tridiagonal form with Householder
 * reflections, find its k largest eigenvalues by Sturm-sequence bisection and their eigenvectors by
 * inverse iteration on the tridiagonal matrix (re-orthogonalised within clusters of close
 * eigenvalues), and transform them back. The other side's vectors are M·v / ‖M·v‖, and σ = ‖M·v‖.
 * Cost ≈ rows·cols·d/2 + d³ flops: a 576×1536 matrix takes a fraction of a second.
 * The Gram matrix squares the condition number, so singular values below ~1e-8·σ₁ lose relative
 * accuracy; for PiSSA only the leading ones matter, and the residual is W − U·S·Vᵀ either way.
 *
 * Randomized path (PEFT's "pissa_niter_N", torch.svd_lowrank(W, q=k, niter=N)): Halko et al.'s
 * subspace iteration with N power iterations, then the exact path on the small projected matrix.
 */
import { LoraTsError } from "../util/errors.js";
import { Rng } from "../util/rng.js";

export interface Svd {
  /** [rows, k] row-major */
  U: Float64Array;
  /** [k], descending */
  S: Float64Array;
  /** [k, cols] row-major */
  Vt: Float64Array;
  k: number;
}

/**
 * The k largest singular triplets of `m` ([rows, cols] row-major). With `niter`, the randomized
 * approximation (seeded by `rng`); without, exact to rounding.
 */
export function topSvd(
  m: Float32Array | Float64Array,
  rows: number,
  cols: number,
  k: number,
  opts: { niter?: number; rng?: Rng } = {},
): Svd {
  if (m.length !== rows * cols)
    throw new LoraTsError(`topSvd: matrix has ${m.length} values, not ${rows}×${cols}`);
  if (!Number.isSafeInteger(k) || k < 1 || k > Math.min(rows, cols)) {
    throw new LoraTsError(`topSvd: k=${k} must be in 1..min(${rows}, ${cols})`);
  }
  if (opts.niter !== undefined) return randomizedSvd(m, rows, cols, k, opts.niter, opts.rng ?? new Rng(0));
  return exactTopSvd(m, rows, cols, k);
}

function exactTopSvd(m: Float32Array | Float64Array, rows: number, cols: number, k: number): Svd {
  const wide = rows <= cols; // Gram of the row side: G = M·Mᵀ (rows×rows)
  const d = wide ? rows : cols;
  const g = new Float64Array(d * d);
  if (wide) {
    const rowBuf = new Float64Array(m.length);
    rowBuf.set(m);
    for (let i = 0; i < d; i++) {
      const oi = i * cols;
      for (let j = 0; j <= i; j++) {
        const oj = j * cols;
        const s = dot(rowBuf, oi, rowBuf, oj, cols);
        g[i * d + j] = s;
        g[j * d + i] = s;
      }
    }
  } else {
    // G = Mᵀ·M: dot products of the columns, from a transposed copy.
    const colBuf = new Float64Array(m.length);
    for (let t = 0; t < rows; t++) for (let i = 0; i < cols; i++) colBuf[i * rows + t] = m[t * cols + i]!;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        const s = dot(colBuf, i * rows, colBuf, j * rows, rows);
        g[i * d + j] = s;
        g[j * d + i] = s;
      }
    }
  }
  const { vectors } = symmetricTopEigen(g, d, k); // [k, d], rows are eigenvectors
  const U = new Float64Array(rows * k);
  const S = new Float64Array(k);
  const Vt = new Float64Array(k * cols);
  if (wide) {
    // vectors are left singular vectors u; v = Mᵀu / σ.
    for (let c = 0; c < k; c++) {
      const v = new Float64Array(cols);
      for (let i = 0; i < rows; i++) {
        const u = vectors[c * d + i]!;
        if (u === 0) continue;
        const o = i * cols;
        for (let t = 0; t < cols; t++) v[t]! += u * m[o + t]!;
      }
      const sigma = norm(v);
      S[c] = sigma;
      for (let i = 0; i < rows; i++) U[i * k + c] = vectors[c * d + i]!;
      if (sigma > 0) for (let t = 0; t < cols; t++) Vt[c * cols + t] = v[t]! / sigma;
    }
  } else {
    for (let c = 0; c < k; c++) {
      const u = new Float64Array(rows);
      for (let i = 0; i < rows; i++) {
        const o = i * cols;
        let s = 0;
        for (let t = 0; t < cols; t++) s += m[o + t]! * vectors[c * d + t]!;
        u[i] = s;
      }
      const sigma = norm(u);
      S[c] = sigma;
      for (let t = 0; t < cols; t++) Vt[c * cols + t] = vectors[c * d + t]!;
      if (sigma > 0) for (let i = 0; i < rows; i++) U[i * k + c] = u[i]! / sigma;
    }
  }
  // σ from ‖M·v‖ can reorder values that are equal to rounding; keep them descending.
  return sortDescending({ U, S, Vt, k }, rows, cols);
}

function randomizedSvd(
  m: Float32Array | Float64Array,
  rows: number,
  cols: number,
  k: number,
  niter: number,
  rng: Rng,
): Svd {
  // Q [rows, k] = orth(M·R), then niter × (Q = orth(Mᵀ·Q); Q = orth(M·Q)).
  const R = rng.fillNormal(new Float64Array(cols * k)) as Float64Array;
  let Q = orthonormalColumns(matmul(m, rows, cols, R, k), rows, k);
  for (let it = 0; it < niter; it++) {
    const P = orthonormalColumns(matmulTransA(m, rows, cols, Q, k), cols, k); // [cols, k]
    Q = orthonormalColumns(matmul(m, rows, cols, P, k), rows, k);
  }
  // B = Qᵀ·M [k, cols]; its exact SVD B = Ub·S·Vt gives U = Q·Ub.
  const Bt = matmulTransA(m, rows, cols, Q, k); // [cols, k] = Mᵀ·Q = Bᵀ
  const B = new Float64Array(k * cols);
  for (let t = 0; t < cols; t++) for (let c = 0; c < k; c++) B[c * cols + t] = Bt[t * k + c]!;
  const small = exactTopSvd(B, k, cols, k);
  const U = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += Q[i * k + j]! * small.U[j * k + c]!;
      U[i * k + c] = s;
    }
  }
  return { U, S: small.S, Vt: small.Vt, k };
}

/** M [rows, cols] · X [cols, k] -> [rows, k] */
function matmul(
  m: Float32Array | Float64Array,
  rows: number,
  cols: number,
  x: Float64Array,
  k: number,
): Float64Array {
  const out = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) {
    const oi = i * k;
    for (let t = 0; t < cols; t++) {
      const a = m[i * cols + t]!;
      if (a === 0) continue;
      const ot = t * k;
      for (let c = 0; c < k; c++) out[oi + c]! += a * x[ot + c]!;
    }
  }
  return out;
}

/** Mᵀ · X, M [rows, cols], X [rows, k] -> [cols, k] */
function matmulTransA(
  m: Float32Array | Float64Array,
  rows: number,
  cols: number,
  x: Float64Array,
  k: number,
): Float64Array {
  const out = new Float64Array(cols * k);
  for (let i = 0; i < rows; i++) {
    const oi = i * k;
    for (let t = 0; t < cols; t++) {
      const a = m[i * cols + t]!;
      if (a === 0) continue;
      const ot = t * k;
      for (let c = 0; c < k; c++) out[ot + c]! += a * x[oi + c]!;
    }
  }
  return out;
}

/** Modified Gram-Schmidt (twice) on the columns of X [n, k], in place; a null column becomes 0. */
function orthonormalColumns(x: Float64Array, n: number, k: number): Float64Array {
  for (let pass = 0; pass < 2; pass++) {
    for (let c = 0; c < k; c++) {
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += x[i * k + c]! * x[i * k + p]!;
        for (let i = 0; i < n; i++) x[i * k + c]! -= dot * x[i * k + p]!;
      }
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i * k + c]! ** 2;
      const nn = Math.sqrt(s);
      for (let i = 0; i < n; i++) x[i * k + c] = nn > 1e-300 ? x[i * k + c]! / nn : 0;
    }
  }
  return x;
}

function sortDescending(svd: Svd, rows: number, cols: number): Svd {
  const { k } = svd;
  const order = [...Array(k).keys()].sort((a, b) => svd.S[b]! - svd.S[a]!);
  if (order.every((v, i) => v === i)) return svd;
  const U = new Float64Array(rows * k);
  const S = new Float64Array(k);
  const Vt = new Float64Array(k * cols);
  order.forEach((src, dst) => {
    S[dst] = svd.S[src]!;
    for (let i = 0; i < rows; i++) U[i * k + dst] = svd.U[i * k + src]!;
    Vt.set(svd.Vt.subarray(src * cols, (src + 1) * cols), dst * cols);
  });
  return { U, S, Vt, k };
}

/** Σ x[xo+t]·y[yo+t] for t < len, with four accumulators (no single dependency chain). */
function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, len: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let t = 0;
  for (; t + 3 < len; t += 4) {
    s0 += x[xo + t]! * y[yo + t]!;
    s1 += x[xo + t + 1]! * y[yo + t + 1]!;
    s2 += x[xo + t + 2]! * y[yo + t + 2]!;
    s3 += x[xo + t + 3]! * y[yo + t + 3]!;
  }
  for (; t < len; t++) s0 += x[xo + t]! * y[yo + t]!;
  return s0 + s1 + (s2 + s3);
}

function norm(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

/**
 * The k largest eigenvalues (descending) of the symmetric matrix `a` [n, n] (overwritten) and
 * their eigenvectors as the rows of a [k, n] array.
 */
export function symmetricTopEigen(
  a: Float64Array,
  n: number,
  k: number,
): { values: Float64Array; vectors: Float64Array } {
  // Householder tridiagonalisation: for each column j, a reflector H_j = I - 2vvᵀ on indices j+1..n-1
  // zeroes a[j+2.., j]. The reflectors are kept (unit vectors) to transform eigenvectors back.
  const diag = new Float64Array(n);
  const off = new Float64Array(Math.max(n - 1, 0)); // off[j] = T[j, j+1]
  const refl: (Float64Array | null)[] = [];
  const p = new Float64Array(n);
  for (let j = 0; j < n - 2; j++) {
    const len = n - j - 1;
    const v = new Float64Array(len);
    let s = 0;
    for (let i = 0; i < len; i++) {
      v[i] = a[(j + 1 + i) * n + j]!;
      s += v[i]! * v[i]!;
    }
    const xnorm = Math.sqrt(s);
    let tail = s - v[0]! * v[0]!;
    if (xnorm === 0 || tail <= 1e-300 * s) {
      refl.push(null);
      diag[j] = a[j * n + j]!;
      off[j] = v[0]!;
      continue;
    }
    const alpha = v[0]! > 0 ? -xnorm : xnorm;
    v[0]! -= alpha;
    tail += v[0]! * v[0]!;
    const vn = Math.sqrt(tail);
    for (let i = 0; i < len; i++) v[i]! /= vn;
    refl.push(v);
    diag[j] = a[j * n + j]!;
    off[j] = alpha;
    // Trailing block A' = H A H: p = 2·A·v, K = vᵀp, q = p − K·v, A' = A − v qᵀ − q vᵀ.
    const b = j + 1;
    let kk = 0;
    for (let i = 0; i < len; i++) {
      p[i] = 2 * dot(a, (b + i) * n + b, v, 0, len);
      kk += v[i]! * p[i]!;
    }
    for (let i = 0; i < len; i++) p[i]! -= kk * v[i]!;
    for (let i = 0; i < len; i++) {
      const row = (b + i) * n + b;
      const vi = v[i]!;
      const pi = p[i]!;
      for (let t = 0; t < len; t++) a[row + t]! -= vi * p[t]! + pi * v[t]!;
    }
  }
  if (n >= 2) {
    diag[n - 2] = a[(n - 2) * n + (n - 2)]!;
    off[n - 2] = a[(n - 1) * n + (n - 2)]!;
  }
  diag[n - 1] = a[(n - 1) * n + (n - 1)]!;

  const values = tridiagTopEigenvalues(diag, off, k);
  const vectors = new Float64Array(k * n);
  let tnorm = 0;
  for (let i = 0; i < n; i++) {
    const r = (i > 0 ? Math.abs(off[i - 1]!) : 0) + (i < n - 1 ? Math.abs(off[i]!) : 0);
    tnorm = Math.max(tnorm, Math.abs(diag[i]!) + r);
  }
  const rng = new Rng(0x5eed);
  const clusterTol = 1e-3 * tnorm;
  let cluster: Float64Array[] = []; // tridiagonal-basis eigenvectors of the current cluster
  for (let c = 0; c < k; c++) {
    if (c > 0 && values[c - 1]! - values[c]! > clusterTol) cluster = [];
    const y = tridiagInverseIteration(diag, off, values[c]!, tnorm, rng, cluster);
    cluster.push(Float64Array.from(y));
    // Back-transform: x = H_0 H_1 … H_{n-3} y.
    for (let j = refl.length - 1; j >= 0; j--) {
      const v = refl[j];
      if (!v) continue;
      const b = j + 1;
      let dot = 0;
      for (let i = 0; i < v.length; i++) dot += v[i]! * y[b + i]!;
      dot *= 2;
      for (let i = 0; i < v.length; i++) y[b + i]! -= dot * v[i]!;
    }
    vectors.set(y, c * n);
  }
  return { values, vectors };
}

/** Sturm count: the number of eigenvalues of T smaller than x. */
function sturmCount(diag: Float64Array, off: Float64Array, x: number): number {
  let count = 0;
  let q = 1;
  for (let i = 0; i < diag.length; i++) {
    const e2 = i > 0 ? off[i - 1]! * off[i - 1]! : 0;
    q = diag[i]! - x - (i > 0 ? e2 / q : 0);
    if (q === 0) q = -1e-300;
    if (q < 0) count++;
  }
  return count;
}

function tridiagTopEigenvalues(diag: Float64Array, off: Float64Array, k: number): Float64Array {
  const n = diag.length;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const r = (i > 0 ? Math.abs(off[i - 1]!) : 0) + (i < n - 1 ? Math.abs(off[i]!) : 0);
    lo = Math.min(lo, diag[i]! - r);
    hi = Math.max(hi, diag[i]! + r);
  }
  const pad = 1e-12 * Math.max(Math.abs(lo), Math.abs(hi), 1e-300);
  lo -= pad;
  hi += pad;
  const out = new Float64Array(k);
  for (let c = 0; c < k; c++) {
    // The (c+1)-th largest is the (n-c)-th smallest: the smallest x with count(x) >= n - c.
    const target = n - c;
    let a = lo;
    let b = c > 0 ? Math.min(hi, out[c - 1]! + pad) : hi;
    for (let it = 0; it < 200 && b - a > 2e-16 * Math.max(Math.abs(a), Math.abs(b)); it++) {
      const mid = 0.5 * (a + b);
      if (mid === a || mid === b) break;
      if (sturmCount(diag, off, mid) >= target) b = mid;
      else a = mid;
    }
    out[c] = 0.5 * (a + b);
  }
  return out;
}

/**
 * An eigenvector of the tridiagonal T for eigenvalue `lambda` by inverse iteration: solve
 * (T − λI)·x = b by Gaussian elimination with partial pivoting (tiny pivots replaced by eps·‖T‖),
 * orthogonalising against the earlier vectors of the same cluster of close eigenvalues.
 */
function tridiagInverseIteration(
  diag: Float64Array,
  off: Float64Array,
  lambda: number,
  tnorm: number,
  rng: Rng,
  cluster: readonly Float64Array[],
): Float64Array {
  const n = diag.length;
  const eps = 2.220446049250313e-16 * Math.max(tnorm, 1e-300);
  // Factor P·(T − λI) = L·U. U row i has entries u0 (col i), u1 (col i+1), u2 (col i+2).
  const u0 = new Float64Array(n);
  const u1 = new Float64Array(n);
  const u2 = new Float64Array(n);
  const mult = new Float64Array(n);
  const swap = new Uint8Array(n);
  let d = diag[0]! - lambda; // the row being eliminated: d at col i, e at col i+1
  let e = n > 1 ? off[0]! : 0;
  for (let i = 0; i < n - 1; i++) {
    const sub = off[i]!; // next row: sub (col i), dn (col i+1), en (col i+2)
    const dn = diag[i + 1]! - lambda;
    const en = i + 1 < n - 1 ? off[i + 1]! : 0;
    if (Math.abs(d) >= Math.abs(sub)) {
      const piv = d === 0 ? eps : d;
      const l = sub / piv;
      u0[i] = piv;
      u1[i] = e;
      u2[i] = 0;
      mult[i] = l;
      d = dn - l * e;
      e = en;
    } else {
      const l = d / sub;
      u0[i] = sub;
      u1[i] = dn;
      u2[i] = en;
      mult[i] = l;
      swap[i] = 1;
      d = e - l * dn;
      e = -l * en;
    }
  }
  u0[n - 1] = d;
  for (let i = 0; i < n; i++) if (Math.abs(u0[i]!) < eps) u0[i] = u0[i]! < 0 ? -eps : eps;

  let x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform(-1, 1);
  const orthogonalize = (): void => {
    for (const q of cluster) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += x[i]! * q[i]!;
      for (let i = 0; i < n; i++) x[i]! -= dot * q[i]!;
    }
  };
  for (let it = 0; it < 4; it++) {
    orthogonalize();
    for (let i = 0; i < n - 1; i++) {
      if (swap[i]) {
        const t = x[i]!;
        x[i] = x[i + 1]!;
        x[i + 1] = t;
      }
      x[i + 1]! -= mult[i]! * x[i]!;
    }
    const y = new Float64Array(n);
    for (let i = n - 1; i >= 0; i--) {
      let s = x[i]!;
      if (i + 1 < n) s -= u1[i]! * y[i + 1]!;
      if (i + 2 < n) s -= u2[i]! * y[i + 2]!;
      y[i] = s / u0[i]!;
    }
    x = y;
    const nn = norm(x);
    if (!(nn > 0) || !Number.isFinite(nn)) {
      for (let i = 0; i < n; i++) x[i] = rng.uniform(-1, 1);
      continue;
    }
    for (let i = 0; i < n; i++) x[i]! /= nn;
  }
  orthogonalize();
  const nn = norm(x);
  for (let i = 0; i < n; i++) x[i]! /= nn;
  return x;
}
