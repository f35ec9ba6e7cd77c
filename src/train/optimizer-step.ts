/**
 * One optimizer step of a run: `gradAccum` micro-batches from the loader through the training session
 * (forward + backward), their gradients averaged, clipped by global norm, and AdamW applied at the
 * step's learning rate. The CLI's trainer and the browser's run both step through this, so the same
 * seed, data and settings give the same losses on either platform.
 *
 * Reproducibility: data order comes from the seeded loader, and dropout masks from a seed that is a
 * function of (seed, step, micro-batch) alone.
 */
import type { DataLoader } from "../data/batching.js";
import type { AdamW } from "./optimizer.js";
import { clipGradNorm } from "./optimizer.js";
import { learningRate, type ScheduleKind } from "./schedule.js";
import { scoredTokens, shiftLabels, type TrainStep } from "./train-graph.js";

export interface StepSettings {
  gradAccum: number;
  seed: number;
  /** LoRA dropout (0 in full mode). */
  dropoutRate: number;
  maxGradNorm: number;
  lr: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  totalSteps: number;
}

export interface StepResult {
  /** Mean loss over the micro-batches. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** The learning rate applied (schedule at this step). */
  lr: number;
  /** Tokens scored. */
  tokens: number;
  epoch: number;
  /** False when the loss or the gradient norm was not finite: nothing was applied. */
  applied: boolean;
}

/**
 * Runs optimizer step `s` (1-based) and updates `values` in place. `beforeMicro` runs before each
 * micro-batch (a stop request throws there, so a step cut short is done again on resume).
 */
export async function optimizerStep(
  run: { step: TrainStep; values: Float32Array[]; optimizer: AdamW; loader: DataLoader },
  o: StepSettings,
  s: number,
  beforeMicro: () => Promise<void> = async () => {},
): Promise<StepResult> {
  const { step, values, optimizer, loader } = run;
  const sums = values.map((v) => new Float32Array(v.length));
  let lossSum = 0;
  let tokens = 0;
  let epoch = 0;
  for (let micro = 0; micro < o.gradAccum; micro++) {
    await beforeMicro();
    const b = loader.next();
    epoch = b.epoch;
    const targets = shiftLabels(b.labels, b.batch, b.seq);
    tokens += scoredTokens(targets);
    const dropoutSeed = o.seed * 1_000_003 + (s - 1) * o.gradAccum + micro;
    const r = await step.run({ ...b, targets }, values, {
      train: true,
      dropoutRate: o.dropoutRate,
      dropoutSeed,
    });
    lossSum += r.loss;
    r.grads.forEach((g, i) => {
      const acc = sums[i]!;
      for (let k = 0; k < g.length; k++) acc[k]! += g[k]!;
    });
  }
  const loss = lossSum / o.gradAccum;
  for (const acc of sums) for (let k = 0; k < acc.length; k++) acc[k]! /= o.gradAccum;
  const gradNorm = clipGradNorm(sums, o.maxGradNorm);
  const lr = learningRate(
    { kind: o.schedule, lr: o.lr, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps },
    s - 1,
  );
  const applied = Number.isFinite(loss) && Number.isFinite(gradNorm);
  if (applied) optimizer.update(values, sums, lr);
  return { loss, gradNorm, lr, tokens, epoch, applied };
}
