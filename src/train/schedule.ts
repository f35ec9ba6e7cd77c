/**
 * Learning-rate schedules with linear warmup, the multipliers of Hugging Face transformers'
 * get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
 * get_cosine_schedule_with_warmup (num_cycles 0.5), where s is the number of updates already done
 * (HF's scheduler step count: the first update uses s = 0, so with warmup its lr is 0):
 *   warmup (s < W):  s / max(1, W)
 *   constant:        1
 *   linear:          max(0, (T − s) / max(1, T − W))
 *   cosine:          max(0, ½·(1 + cos(π · 2c · p))),  p = (s − W) / max(1, T − W), c = numCycles
 * with W = warmupSteps and T = totalSteps.
 */
import { LoraTsError } from "../util/errors.js";

export type ScheduleKind = "constant" | "linear" | "cosine";

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  warmupSteps?: number;
  /** Total number of updates (needed by linear and cosine). */
  totalSteps?: number;
  /** Cosine waves (HF default 0.5: one half-cosine from lr down to 0). */
  numCycles?: number;
}

/** The multiplier of the peak lr for the update after `step` updates (see the module comment). */
export function lrMultiplier(o: ScheduleOptions, step: number): number {
  const w = o.warmupSteps ?? 0;
  if (step < w) return step / Math.max(1, w);
  if (o.kind === "constant") return 1;
  const total = o.totalSteps;
  if (total === undefined) throw new LoraTsError(`the ${o.kind} schedule needs totalSteps`);
  if (o.kind === "linear") return Math.max(0, (total - step) / Math.max(1, total - w));
  if (o.kind === "cosine") {
    const progress = (step - w) / Math.max(1, total - w);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (o.numCycles ?? 0.5) * 2 * progress)));
  }
  throw new LoraTsError(`unknown lr schedule "${String(o.kind)}" (constant, linear or cosine)`);
}

/** The learning rate for the update after `step` updates. */
export function learningRate(o: ScheduleOptions, step: number): number {
  return o.lr * lrMultiplier(o, step);
}
