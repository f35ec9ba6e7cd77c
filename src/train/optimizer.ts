/**
 * AdamW (Loshchilov & Hutter, decoupled weight decay) over Float32Array parameters, with the update
 * of PyTorch's torch.optim.AdamW (amsgrad off, maximize off), for step t = 1, 2, ...:
 *   θ ← θ · (1 − lr·λ)                      (decoupled weight decay)
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 * Arithmetic is done in float64 per element and stored as float32 (PyTorch computes in float32, so the
 * two agree to float32 rounding). Defaults are PyTorch's: β = (0.9, 0.999), ε = 1e-8, λ = 0.01.
 *
 * Also: clipping by global L2 norm (as torch.nn.utils.clip_grad_norm_) and a gradient accumulator
 * (sum micro-batch gradients, then scale by 1/K — the mean of K micro-batch mean losses, what HF
 * Trainer's loss/K does).
 */
import { LoraTsError } from "../util/errors.js";

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay λ (applied as θ·(1 − lr·λ)). */
  weightDecay?: number;
}

/** The optimizer's state, for checkpoints (arrays are copies). */
export interface AdamWState {
  /** Number of updates done. */
  step: number;
  /** First moments, one per parameter. */
  m: Float32Array[];
  /** Second moments, one per parameter. */
  v: Float32Array[];
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private stepCount = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  /**
   * @param sizes element count of each parameter (or the parameters themselves).
   * @param perParamWeightDecay optional λ per parameter (e.g. 0 for norms and biases), overriding
   *   options.weightDecay.
   */
  constructor(
    sizes: readonly (number | ArrayLike<number>)[],
    options: AdamWOptions,
    private readonly perParamWeightDecay?: readonly number[],
  ) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    for (const [k, x] of [
      ["beta1", this.beta1],
      ["beta2", this.beta2],
    ] as const) {
      if (!(x >= 0 && x < 1)) throw new LoraTsError(`AdamW ${k} must be in [0, 1), got ${x}`);
    }
    if (!(this.eps >= 0)) throw new LoraTsError(`AdamW eps must be ≥ 0, got ${this.eps}`);
    if (perParamWeightDecay && perParamWeightDecay.length !== sizes.length) {
      throw new LoraTsError(
        `AdamW: ${perParamWeightDecay.length} weight decays for ${sizes.length} parameters`,
      );
    }
    const n = sizes.map((s) => (typeof s === "number" ? s : s.length));
    this.m = n.map((k) => new Float32Array(k));
    this.v = n.map((k) => new Float32Array(k));
  }

  /** Number of updates done so far. */
  get step(): number {
    return this.stepCount;
  }

  /** One update of `params` in place with `grads`; `lr` overrides this.lr (for schedules). */
  update(params: readonly Float32Array[], grads: readonly ArrayLike<number>[], lr = this.lr): void {
    if (params.length !== this.m.length || grads.length !== this.m.length) {
      throw new LoraTsError(
        `AdamW: expected ${this.m.length} parameters and gradients, got ${params.length} and ${grads.length}`,
      );
    }
    const t = ++this.stepCount;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const bc1 = 1 - b1 ** t;
    const sqrtBc2 = Math.sqrt(1 - b2 ** t);
    const stepSize = lr / bc1;
    for (let p = 0; p < params.length; p++) {
      const theta = params[p]!;
      const g = grads[p]!;
      const m = this.m[p]!;
      const v = this.v[p]!;
      if (theta.length !== m.length || g.length !== m.length) {
        throw new LoraTsError(
          `AdamW: parameter ${p} has ${theta.length} values and gradient ${g.length}, expected ${m.length}`,
        );
      }
      const decay = 1 - lr * (this.perParamWeightDecay?.[p] ?? this.weightDecay);
      for (let i = 0; i < m.length; i++) {
        const gi = g[i]!;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const mf = m[i]!; // the stored (float32) moments, as PyTorch uses them
        const vf = v[i]!;
        theta[i] = theta[i]! * decay - (stepSize * mf) / (Math.sqrt(vf) / sqrtBc2 + this.eps);
      }
    }
  }

  state(): AdamWState {
    return { step: this.stepCount, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  loadState(s: AdamWState): void {
    if (!Number.isInteger(s.step) || s.step < 0) throw new LoraTsError(`AdamW state: bad step ${s.step}`);
    if (s.m.length !== this.m.length || s.v.length !== this.v.length) {
      throw new LoraTsError(`AdamW state has ${s.m.length} parameters, the optimizer ${this.m.length}`);
    }
    for (let p = 0; p < this.m.length; p++) {
      if (s.m[p]!.length !== this.m[p]!.length || s.v[p]!.length !== this.v[p]!.length) {
        throw new LoraTsError(`AdamW state: parameter ${p} has the wrong size`);
      }
    }
    this.stepCount = s.step;
    for (let p = 0; p < this.m.length; p++) {
      this.m[p]!.set(s.m[p]!);
      this.v[p]!.set(s.v[p]!);
    }
  }
}

/** Global L2 norm of all gradients together (accumulated in float64). */
export function globalGradNorm(grads: readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  return Math.sqrt(s);
}

/**
 * Clips gradients in place to global norm ≤ maxNorm, as torch.nn.utils.clip_grad_norm_: when the
 * norm exceeds maxNorm every gradient is scaled by maxNorm / (norm + 1e-6). Returns the norm BEFORE
 * clipping. A non-finite norm is returned and the gradients are left as they are (the caller stops).
 */
export function clipGradNorm(grads: readonly Float32Array[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new LoraTsError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalGradNorm(grads);
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
  return norm;
}

/** Sums gradients over micro-batches; `mean()` scales the sums by 1 / (number added). */
export class GradAccumulator {
  private readonly sums: Float32Array[];
  private n = 0;

  constructor(sizes: readonly (number | ArrayLike<number>)[]) {
    this.sums = sizes.map((s) => new Float32Array(typeof s === "number" ? s : s.length));
  }

  /** Micro-batches added since the last reset. */
  get count(): number {
    return this.n;
  }

  add(grads: readonly ArrayLike<number>[]): void {
    if (grads.length !== this.sums.length) {
      throw new LoraTsError(`GradAccumulator: ${grads.length} gradients, expected ${this.sums.length}`);
    }
    grads.forEach((g, p) => {
      const s = this.sums[p]!;
      if (g.length !== s.length) throw new LoraTsError(`GradAccumulator: gradient ${p} has the wrong size`);
      for (let i = 0; i < s.length; i++) s[i] = s[i]! + g[i]!;
    });
    this.n++;
  }

  /** The summed gradients scaled by 1/count, in place (the accumulator's own arrays). */
  mean(): Float32Array[] {
    if (this.n === 0) throw new LoraTsError("GradAccumulator: nothing accumulated");
    const k = 1 / this.n;
    for (const s of this.sums) for (let i = 0; i < s.length; i++) s[i] = s[i]! * k;
    this.n = 1;
    return this.sums;
  }

  reset(): void {
    for (const s of this.sums) s.fill(0);
    this.n = 0;
  }
}
