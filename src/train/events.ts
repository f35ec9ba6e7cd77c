/** What a training run reports as it goes: the progress bar, metrics.jsonl and the report read these. */
import type { DataSummary } from "../data/examples.js";
import type { DataProgress } from "../data/prepare.js";
import type { RowAccounting } from "../data/prepared.js";
import type { InterruptInfo } from "./interrupt.js";
import type { TrainMemoryEstimate } from "./memory-estimate.js";

export interface StepMetrics {
  type: "train";
  /** Optimizer steps done (1-based after the first update). */
  step: number;
  epoch: number;
  /** Mean token loss of this step's batches. */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Scored tokens in this step. */
  tokens: number;
  tokensPerSec: number;
  elapsedSec: number;
}

export interface EvalMetrics {
  type: "eval";
  step: number;
  loss: number;
  perplexity: number;
  /** Scored tokens in the validation set. */
  tokens: number;
}

export type Metrics = StepMetrics | EvalMetrics;

export type { DataProgress };

/** How a data set was prepared (onData's third argument). */
export interface DataPreparation {
  /** Tokens of the prepared examples (before packing). */
  tokens: number;
  /** Seconds preparation took (0 when a cached set was opened). */
  seconds: number;
  /** Threads that prepared it (0 when a cached set was opened). */
  workers: number;
  /** True when the prepared set came from the data cache. */
  cached?: boolean;
}

/**
 * metrics.jsonl's record of what became of a data set's rows (one per data set, first in the file):
 * read, kept, truncated and dropped with the reason, as the CLI's `data:` line says it.
 */
export interface DataRecord extends Partial<DataPreparation> {
  type: "data";
  role: "train" | "val";
  path?: string;
  rows: RowAccounting;
  examples: number;
  trainedTokens: number;
  maxLength: number;
}

export interface TrainStart {
  totalSteps: number;
  /** Step the run starts from (> 0 when resumed). */
  startStep: number;
  trainableParams: number;
  totalParams: number;
  mode: "lora" | "full";
  /**
   * The folder the run writes into (checkpoints, metrics.jsonl): the output folder itself, or, when a
   * run replaces a non-empty one (`force`), a temporary folder beside it that is renamed to the output
   * folder when the run succeeds, before onEnd.
   */
  outDir?: string;
}

export interface TrainSummary {
  mode: "lora" | "full";
  outDir: string;
  steps: number;
  seconds: number;
  trainableParams: number;
  totalParams: number;
  finalTrainLoss: number | null;
  firstEvalLoss: number | null;
  finalEvalLoss: number | null;
  /** Bytes of what was saved (adapter or full model) and of the base model's weights. */
  savedBytes: number;
  baseBytes: number;
}

export interface TrainerEvents {
  /**
   * Preparation of a data set (tokenizing it into a prepared folder) has started, is going on (a few
   * times a second) or is done, or failed; before onData.
   */
  onDataProgress?(p: DataProgress, role: "train" | "val"): void;
  /** What was made of a data file (before onStart): rows, examples, truncated and dropped, and why. */
  onData?(summary: DataSummary, role: "train" | "val", preparation?: DataPreparation): void;
  /** The run's estimated peak memory and the memory available, before anything is built. */
  onMemory?(estimate: TrainMemoryEstimate, availableBytes: number): void;
  /**
   * What the run is about to do that may take long: building the graph, creating the onnxruntime
   * session, or (with `step`) a training step; null when nothing long is running.
   */
  onPhase?(what: string | null, step?: number): void;
  onStart?(info: TrainStart): void;
  onStep?(m: StepMetrics): void;
  onEval?(m: EvalMetrics): void;
  /**
   * A checkpoint is complete. `dir` is where it is kept (a --force run builds in a temporary folder and
   * moves it there at the end); `removed`: older ones deleted for --save-total-limit.
   */
  onCheckpoint?(dir: string, step: number, removed?: string[]): void;
  onEnd?(summary: TrainSummary): void;
  /** The run stops on a signal, instead of onEnd (the trainer then rejects with TrainingInterrupted). */
  onInterrupt?(info: InterruptInfo): void;
}
