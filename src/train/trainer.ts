/**
 * `train()`: the training loop. Each optimizer step runs `gradAccum` micro-batches through the one
 * training session (forward + backward), averages their gradients, clips them by global norm and
 * applies AdamW in TypeScript. Evaluation, checkpoints and resumption wrap around that.
 *
 * Reproducibility: data order comes from the seeded loader, dropout masks from a seed that is a
 * function of (seed, step, micro-batch), and checkpoints hold the parameters, the optimizer's
 * moments and the loader position, so `resume` continues exactly where an uninterrupted run would.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { DataLoader, padIdOf, splitSource } from "../data/batching.js";
import type { ColumnMap } from "../data/columns.js";
import { dataFingerprint, fileContentHash, tokenizerKeyParts, withDataCache } from "../data/data-cache.js";
import { type ExampleSource, longestExample, packedSource } from "../data/example-source.js";
import { maxLengthFor } from "../data/examples.js";
import { prepareData } from "../data/prepare.js";
import { PREPARED_VERSION, PreparedData, type PreparedMeta } from "../data/prepared.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { readTokenizer } from "../data/tokenizer-files.js";
import { DATA_EXTENSIONS } from "../io/hub-data-files.js";
import { resolveDataFiles } from "../io/hub-dataset.js";
import { type Adapter, pissaToLora } from "../lora/adapter.js";
import { writeAdapterFiles } from "../lora/adapter-files.js";
import type { LoraConfig } from "../lora/config.js";
import { quantizeModelInBackground } from "../models/int8-quantize.js";
import { resolveModelPath } from "../models/model-path.js";
import { openModelDir } from "../models/open-model.js";
import { queryBlocksFor } from "../models/transformer.js";
import { removeStrayTemps } from "../util/atomic.js";
import { LoraTsError } from "../util/errors.js";
import { availableMemoryBytes } from "../util/memory.js";
import { refuseBadOut, refuseBaseModelOut } from "../util/out-dir.js";
import {
  listCheckpoints,
  pruneCheckpoints,
  type RunSettings,
  resumeFrom,
  saveCheckpoint,
  writeFullModel,
} from "./checkpoint.js";
import { meanLoss } from "./evaluate.js";
import type { DataPreparation, EvalMetrics, StepMetrics, TrainerEvents, TrainSummary } from "./events.js";
import { type InterruptInfo, stopSignalOf, TrainingInterrupted } from "./interrupt.js";
import { loraSelection, startLora } from "./lora-setup.js";
import { checkTrainMemory, estimateTrainMemory, type TrainMemoryInput } from "./memory-estimate.js";
import { AdamW } from "./optimizer.js";
import { optimizerStep } from "./optimizer-step.js";
import type { ScheduleKind } from "./schedule.js";
import { buildTrainStep, type TrainStep } from "./train-graph.js";

export interface TrainOptions {
  model: string;
  data: string;
  valData?: string;
  /** Held out from `data` for validation when no valData is given (0: none). */
  valFraction?: number;
  out: string;
  mode?: "lora" | "full";
  /** LoRA settings (PEFT names); `loraConfig` replaces them all when given. */
  r?: number;
  alpha?: number;
  dropout?: number;
  targets?: string[] | string;
  rslora?: boolean;
  /** DoRA (PEFT's use_dora): a trained magnitude per output beside A and B (lora/dora.ts). */
  dora?: boolean;
  init?: LoraConfig["init_lora_weights"];
  /** PEFT's bias setting: "none" (default), "all" or "lora_only" biases trained too. */
  bias?: LoraConfig["bias"];
  loraConfig?: LoraConfig;
  lr?: number;
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  gradAccum?: number;
  maxLength?: number;
  seed?: number;
  evalEvery?: number;
  saveEvery?: number;
  /** Hugging Face's save_total_limit: after each checkpoint, keep only the newest this many in `out`. */
  saveTotalLimit?: number;
  /**
   * Continue from the newest checkpoint in `out`. Its recorded settings must be this run's (else a
   * one-line refusal naming each difference); temporary files a killed run left in `out` are removed.
   */
  resume?: boolean;
  /**
   * Replace a non-empty `out` (without it, a non-empty `out` is refused unless `resume`). The run is
   * built in a temporary folder beside `out` and swapped in only when it succeeds, so a run that fails
   * or is killed leaves the previous one as it was.
   */
  force?: boolean;
  schedule?: ScheduleKind;
  warmupSteps?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  trainOnInputs?: boolean;
  packing?: boolean;
  /**
   * Threads that prepare (tokenize) the data (default: one per core, os.availableParallelism()); 1
   * prepares in the main thread. The result is the same whatever the number.
   */
  dataWorkers?: number;
  /** --columns: the data's column names for the row formats' fields (data/columns.ts). */
  columns?: ColumnMap;
  /**
   * false (--no-data-cache): the prepared data goes in a temporary folder, removed after the run,
   * instead of the data cache (see prepareDataSet).
   */
  dataCache?: boolean;
  /** The split of a hub data set given as `data` (default "train"). */
  split?: string;
  /**
   * Validation rows: this split of the `valData` hub data set, or, without valData, of the `data` one
   * (e.g. "validation"). Not with valFraction.
   */
  valSplit?: string;
  /** Use the unfused head + loss and ORT's default session settings (a reference for tests). */
  plainPath?: boolean;
  /** onnxruntime intra-op threads (default: every core). */
  threads?: number;
  /**
   * LoRA mode: the frozen linear weights in int8 (per-row scales; activations and gradients quantized
   * per tensor at run time) for their forward and input-gradient products. Faster and leaner than
   * float32, and approximate: see the README for the measured effect on the loss.
   */
  baseInt8?: boolean;
  /**
   * Recompute each decoder layer's activations in the backward pass instead of keeping them from the
   * forward pass (graph/checkpoint.ts): the same loss and gradients, much less memory on long
   * sequences and big models, about one more forward pass of time per step (+40% measured).
   */
  gradientCheckpointing?: boolean;
  /**
   * Refuse a run whose estimated peak memory (memory-estimate.ts) is above the memory available, before
   * anything is built (default true; the CLI's --no-memory-check).
   */
  memoryCheck?: boolean;
  /**
   * Aborting it stops the run at the next step or micro-batch (never inside a checkpoint write): the
   * promise rejects with TrainingInterrupted. Its reason, "SIGINT" or "SIGTERM", is reported.
   */
  signal?: AbortSignal;
}

/** The defaults, as the CLI documents them. */
type Defaulted =
  | "mode"
  | "r"
  | "alpha"
  | "dropout"
  | "lr"
  | "batchSize"
  | "gradAccum"
  | "maxLength"
  | "seed"
  | "schedule"
  | "warmupSteps"
  | "weightDecay"
  | "maxGradNorm"
  | "valFraction";

export const TRAIN_DEFAULTS: Required<Pick<TrainOptions, Defaulted>> = {
  mode: "lora",
  r: 8,
  alpha: 16,
  dropout: 0.05,
  lr: 2e-4,
  batchSize: 4,
  gradAccum: 1,
  maxLength: 512,
  seed: 0,
  schedule: "linear",
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  valFraction: 0,
};

export class NonFiniteLossError extends LoraTsError {
  override name = "NonFiniteLossError";
}

export { listCheckpoints };

/** A data set prepared on disk, open for reading, and how to let it go. */
export interface PreparedDataSet {
  data: PreparedData;
  /** How it was prepared (or that it came from the cache), for onData and metrics.jsonl. */
  preparation: DataPreparation;
  /** Closes it and removes the folder when it was a temporary one. */
  dispose(): void;
}

/**
 * THE place where a run obtains its prepared data (issue #18): the data files tokenized into a
 * prepared folder (data/prepare.ts) and opened for reading (data/prepared.ts).
 *
 * The folder comes from the data cache (data/data-cache.ts), keyed by the data files' content and
 * everything that changes what preparation writes: the tokenizer (its JSON and config, which holds the
 * chat template), `exampleOptions` below, the files' types (a .txt is read otherwise than a .jsonl of
 * the same bytes), `o.columns` and the prepared format's version. Not dataWorkers, which does not
 * change the result; packing and the validation split are applied when reading, so they need not be
 * part of it. With `dataCache: false` (--no-data-cache) it is a temporary folder under os.tmpdir()
 * that dispose() removes (also when preparation fails).
 */
export async function prepareDataSet(
  files: readonly string[],
  tok: Tokenizer,
  o: {
    maxLength: number;
    trainOnInputs?: boolean;
    dataWorkers?: number;
    columns?: ColumnMap;
    dataCache?: boolean;
  },
  role: "train" | "val",
  events: Pick<TrainerEvents, "onDataProgress">,
  warn: (line: string) => void = (line) => process.stderr.write(`warning: ${line}\n`),
): Promise<PreparedDataSet> {
  const exampleOptions = { maxLength: o.maxLength, trainOnInputs: o.trainOnInputs };
  let preparation: DataPreparation | null = null;
  let opened: PreparedData | null = null;
  const folder = await withDataCache({
    fingerprint:
      o.dataCache === false
        ? null
        : dataFingerprint(
            {
              prepared: PREPARED_VERSION,
              ...tokenizerKeyParts(tok),
              examples: exampleOptions,
              fileTypes: files.map((f) => extname(f).toLowerCase()),
              columns: o.columns ?? null,
            },
            files,
          ),
    build: async (dir) => {
      const t0 = performance.now();
      let workers = 1;
      // A Ctrl-C before training starts exits at once (interrupt.ts): no half-built folder stays.
      const stopWatching = removeOnExit(dir);
      let meta: PreparedMeta;
      try {
        meta = await prepareData(dir, {
          files,
          tokenizer: tok,
          options: exampleOptions,
          workers: o.dataWorkers,
          ...(o.columns !== undefined ? { columns: o.columns } : {}),
          onProgress: (p) => {
            workers = p.workers;
            events.onDataProgress?.(p, role);
          },
        });
      } finally {
        stopWatching();
      }
      preparation = { tokens: meta.tokens, seconds: (performance.now() - t0) / 1000, workers };
    },
    open: (dir) => {
      opened?.close();
      opened = PreparedData.open(dir);
    },
    warn,
  });
  const data = opened as PreparedData | null;
  if (data === null) throw new LoraTsError(`prepared data ${folder.dir}: not opened`);
  const dispose = () => {
    process.off("exit", dispose);
    data.close();
    folder.dispose();
  };
  // The process may exit without unwinding (a second Ctrl-C): a temporary folder goes all the same.
  process.on("exit", dispose);
  return {
    data,
    preparation: preparation ?? { tokens: data.meta.tokens, seconds: 0, workers: 0, cached: true },
    dispose,
  };
}

/** Removes `dir` if the process exits before the returned function is called. */
function removeOnExit(dir: string): () => void {
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.on("exit", remove);
  return () => process.off("exit", remove);
}

/**
 * Checks `out` before a run, touching nothing: a non-empty folder is refused unless the run resumes it
 * or replaces it (`force`). Returns true when the run replaces a non-empty folder. `canResume: false`
 * (the demo) leaves --resume out of the message.
 */
export function checkOutDir(
  out: string,
  opts: { resume?: boolean; force?: boolean; canResume?: boolean } = {},
): boolean {
  if (opts.resume && opts.force) throw new LoraTsError("train: give --resume or --force, not both");
  if (!existsSync(out)) return false;
  if (!statSync(out).isDirectory()) throw new LoraTsError(`--out ${out}: is a file, not a folder`);
  if (readdirSync(out).length === 0 || opts.resume) return false;
  if (!opts.force)
    throw new LoraTsError(
      `--out ${out}: is not empty (use --force to replace it${opts.canResume === false ? "" : ", or --resume to continue"})`,
    );
  return true;
}

/**
 * The folder a run writes into: `out` itself (created if needed), or, when it replaces a non-empty
 * `out`, a new temporary folder beside it (`.NAME.train-XXXXXX`) that `swapInto` renames to `out`.
 */
function makeWorkDir(out: string, replacing: boolean): string {
  if (!replacing) {
    mkdirSync(out, { recursive: true });
    return out;
  }
  const abs = resolve(out);
  return mkdtempSync(join(dirname(abs), `.${basename(abs)}.train-`));
}

/** Puts the finished run `work` in the place of `out`; the old `out` is removed only after that. */
function swapInto(work: string, out: string): void {
  const abs = resolve(out);
  const old = join(dirname(abs), `.${basename(abs)}.old-${process.pid}-${randomBytes(4).toString("hex")}`);
  renameSync(abs, old);
  renameSync(work, abs);
  rmSync(old, { recursive: true, force: true });
}

function dirBytes(dir: string, filter: (name: string) => boolean): number {
  return readdirSync(dir)
    .filter(filter)
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** Runs a training job; resolves with the summary, or rejects with a one-line LoraTsError. */
export async function train(options: TrainOptions, events: TrainerEvents[] = []): Promise<TrainSummary> {
  // Options left undefined (e.g. flags not given) keep their defaults.
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const o = { ...TRAIN_DEFAULTS, ...given } as TrainOptions & typeof TRAIN_DEFAULTS;
  const emit = <K extends keyof TrainerEvents>(k: K, ...args: Parameters<NonNullable<TrainerEvents[K]>>) => {
    for (const e of events) (e[k] as ((...a: typeof args) => void) | undefined)?.(...args);
  };
  const started = performance.now();
  if (o.baseInt8 && o.mode === "full")
    throw new LoraTsError("train: --base-int8 quantizes frozen weights; --mode full has none");
  if (options.valData !== undefined && (options.valFraction ?? 0) > 0)
    throw new LoraTsError(
      "train: give --val-data or --val-fraction, not both (with --val-data nothing is held out of --data)",
    );
  if (options.valSplit !== undefined && (options.valFraction ?? 0) > 0)
    throw new LoraTsError(
      "train: give --val-split or --val-fraction, not both (with --val-split nothing is held out of --data)",
    );
  // Nothing in `out` is written until every input (model, data, settings, checkpoint) is checked.
  refuseBaseModelOut(o.out, [o.model]); // a base model's files are never written, whatever the flags
  // The data are only read: a --force run replacing a folder that holds them would delete them.
  const inputs = [o.data, o.valData].filter((p): p is string => p !== undefined);
  refuseBadOut(
    o.out,
    inputs.map((path) => ({ path, what: "an input file" })),
  );
  const replacing = checkOutDir(o.out, o);
  // Local files, or a hub data set's files for the split (downloaded into the hub cache).
  const dataFiles = await dataFilesOf(o.data, o.split, "--data", "--split");
  const valFiles =
    o.valData !== undefined
      ? await dataFilesOf(o.valData, o.valSplit, "--val-data", "--val-split")
      : o.valSplit !== undefined
        ? await dataFilesOf(o.data, o.valSplit, "--data", "--val-split")
        : null;
  const dir = await resolveModelPath(o.model);
  const model = openModelDir(dir);
  const tok = readTokenizer(dir);
  const maxLength = maxLengthFor(options.maxLength, model.config.maxPositions, TRAIN_DEFAULTS.maxLength);
  // The prepared data sets stay open (examples are read from disk as batches need them) until the run
  // ends, however it ends.
  const prepared: PreparedDataSet[] = [];
  try {
    return await trainOn(prepared);
  } finally {
    for (const p of prepared) p.dispose();
  }

  async function trainOn(prepared: PreparedDataSet[]): Promise<TrainSummary> {
    /** A data file prepared and reported (onData), as the rows the loader sees (packed with --packing). */
    const load = async (files: string[], role: "train" | "val"): Promise<ExampleSource> => {
      const set = await prepareDataSet(files, tok, { ...o, maxLength }, role, {
        onDataProgress: (p, r) => emit("onDataProgress", p, r),
      });
      prepared.push(set);
      // A cached set may have been prepared from a copy of the file elsewhere: named as given now.
      const { path: _, ...summary } = set.data.meta.summary;
      emit("onData", files.length === 1 ? { ...summary, path: files[0]! } : summary, role, set.preparation);
      if (set.data.size === 0) {
        const what = files.length === 1 ? files[0] : `${files[0]} (and ${files.length - 1} more)`;
        throw new LoraTsError(`${what}: no example has a token to train on`);
      }
      return o.packing ? packedSource(set.data, maxLength) : set.data;
    };
    const all = await load(dataFiles, "train");
    const { train: trainSet, val: heldOut } = valFiles
      ? { train: all, val: await load(valFiles, "val") }
      : splitSource(all, o.valFraction, o.seed);
    const padId = padIdOf(tok);
    const loader = new DataLoader(trainSet, { batchSize: o.batchSize, padId, seed: o.seed });
    const stepsPerEpoch = Math.max(1, Math.ceil(loader.batchesPerEpoch / o.gradAccum));
    const totalSteps = o.maxSteps ?? Math.ceil((o.epochs ?? 1) * stepsPerEpoch);
    // Batches are padded to their longest row, so the longest example (evaluation's too) bounds the peak.
    const longest = Math.max(longestExample(trainSet), longestExample(heldOut));
    const seq = Math.max(2, Math.min(maxLength, longest));
    // Estimated (and reported) for every run; a run above the memory available is refused unless the
    // check is off.
    const checkMemory = (lora: Pick<TrainMemoryInput, "selected" | "biases" | "dropout" | "dora"> = {}) => {
      const estimate = estimateTrainMemory({
        config: model.config,
        batch: o.batchSize,
        seq,
        maxLength,
        mode: o.mode,
        int8: o.baseInt8,
        plainLoss: o.plainPath,
        threads: o.threads,
        gradientCheckpointing: o.gradientCheckpointing,
        ...lora,
      });
      const available = availableMemoryBytes();
      emit("onMemory", estimate, available);
      if (o.memoryCheck !== false) checkTrainMemory(estimate, available);
    };

    const phase = (what: string) => emit("onPhase", what);
    // The plain path is the reference the optimized one is tested against: no query blocks there.
    const queryBlocks = o.plainPath ? 1 : queryBlocksFor(seq);
    // What is trained, and its starting values.
    let adapter: Adapter | null = null;
    /** PiSSA's initial A₀, B₀: the saved adapter is converted against them to fit the original base. */
    let pissaStart: Adapter | null = null;
    let step: TrainStep;
    let values: Float32Array[];
    if (o.mode === "full") {
      checkMemory();
      const setup = {
        mode: "full" as const,
        checkpointLayers: o.gradientCheckpointing,
        queryBlocks,
      };
      step = await buildTrainStep(model, setup, { threads: o.threads }, true, phase);
      values = step.params.map((p) => model.weights.readFloat32(p.name));
    } else {
      const selection = loraSelection(model, { ...o, baseModel: o.model });
      // Before the adapter is created, so that PiSSA's SVD is not spent on a run that is refused.
      checkMemory({
        selected: selection.selected,
        biases: selection.biases,
        dropout: selection.config.lora_dropout,
        dora: selection.config.use_dora,
      });
      const start = startLora(model, selection, o.seed, {
        plainLoss: o.plainPath,
        int8: o.baseInt8,
        checkpointLayers: o.gradientCheckpointing,
      });
      adapter = start.adapter;
      pissaStart = start.pissaStart;
      const setup = start.setup;
      setup.queryBlocks = queryBlocks;
      // Worker threads quantize the frozen weights while this thread builds the graph and session.
      if (o.baseInt8) setup.int8Weights = quantizeModelInBackground(model, setup.residuals?.keys());
      // The plain path also takes onnxruntime's default session settings (arena off, memory pattern on).
      const plainSession = o.plainPath
        ? { memArena: false, memPattern: true, config: { "session.disable_prepacking": "0" } }
        : {};
      step = await buildTrainStep(model, setup, { threads: o.threads, ...plainSession }, true, phase);
      values = step.params.map((p) => adapter!.tensors.get(p.name)!.data);
    }
    emit("onPhase", null);
    const trainableParams = values.reduce((n, v) => n + v.length, 0);
    const baseParams = model.weights.parameterCount();
    const optimizer = new AdamW(values, { lr: o.lr, weightDecay: o.weightDecay });

    /** On a stop request (o.signal): release the session and reject, reporting `done` steps. */
    const stopIfAsked = async (done: number) => {
      if (!o.signal?.aborted) return;
      await step.release();
      const info: InterruptInfo = {
        signal: stopSignalOf(o.signal),
        step: done,
        totalSteps,
        out: o.out,
        lastCheckpoint: replacing ? null : (listCheckpoints(o.out).at(-1)?.dir ?? null),
        discarded: replacing,
        saveEvery: o.saveEvery,
      };
      emit("onInterrupt", info);
      throw new TrainingInterrupted(info);
    };

    // What this run computes: recorded in each checkpoint, and checked against it on resume.
    const runSettings = o.resume || o.saveEvery ? recordedSettings(o, maxLength, dataFiles) : null;

    // Resume from the newest checkpoint, then clear what a killed run left half-written.
    let startStep = 0;
    if (o.resume) {
      startStep = resumeFrom(o.out, {
        mode: o.mode,
        totalSteps,
        settings: runSettings!,
        loraConfig: adapter?.config ?? null,
        step,
        values,
        adapter,
        optimizer,
        loader,
      }).step;
    }
    await stopIfAsked(startStep);
    if (o.resume) removeStrayTemps(o.out);

    let firstEval: EvalMetrics | null = null;
    let lastEval: EvalMetrics | null = null;
    let lastLoss: number | null = null;
    let savedBytes = 0;
    const work = makeWorkDir(o.out, replacing);
    try {
      emit("onStart", {
        totalSteps,
        startStep,
        trainableParams,
        totalParams: baseParams + (o.mode === "lora" ? trainableParams : 0),
        mode: o.mode,
        outDir: work,
      });
      const dropoutRate = adapter?.config.lora_dropout ?? 0;
      const stepSettings = { ...o, dropoutRate, totalSteps };
      const evaluate = async (at: number): Promise<EvalMetrics | null> => {
        if (heldOut.size === 0) return null;
        const r = await meanLoss(step, values, heldOut, { batchSize: o.batchSize, padId });
        const m: EvalMetrics = { type: "eval", step: at, ...r };
        emit("onEval", m);
        return m;
      };

      if (startStep === 0 && o.evalEvery) firstEval = lastEval = await evaluate(0);
      const t0 = performance.now();
      let tokensSeen = 0;
      for (let s = startStep + 1; s <= totalSteps; s++) {
        emit("onPhase", `step ${s} of ${totalSteps}`, s);
        const { loss, gradNorm, lr, tokens, epoch, applied } = await optimizerStep(
          { step, values, optimizer, loader },
          stepSettings,
          s,
          () => stopIfAsked(s - 1), // a step cut short is done again on resume
        );
        if (!applied) {
          const last = replacing ? undefined : listCheckpoints(o.out).at(-1);
          await step.release();
          const kept = replacing
            ? `${o.out} is left as it was`
            : last
              ? `The last good checkpoint is ${last.dir}`
              : "No checkpoint was saved yet";
          throw new NonFiniteLossError(
            `the loss became ${Number.isFinite(loss) ? `finite but the gradient norm is ${gradNorm}` : loss} at step ${s} ` +
              `(lr ${o.lr}); training stopped. ${kept}`,
          );
        }
        lastLoss = loss;
        tokensSeen += tokens;
        const elapsed = (performance.now() - t0) / 1000;
        const m: StepMetrics = {
          type: "train",
          step: s,
          epoch,
          loss,
          lr,
          gradNorm,
          tokens,
          tokensPerSec: tokensSeen / Math.max(elapsed, 1e-9),
          elapsedSec: elapsed,
        };
        emit("onStep", m);
        if (o.evalEvery && s % o.evalEvery === 0) lastEval = (await evaluate(s)) ?? lastEval;
        if (o.saveEvery && s % o.saveEvery === 0 && s < totalSteps) {
          const dirName = join(work, `checkpoint-${s}`);
          const state = {
            step: s,
            loader: loader.state(),
            optimizer: { step: optimizer.step },
            mode: o.mode,
          };
          const settings = runSettings!;
          await saveCheckpoint(
            dirName,
            { ...state, totalSteps, settings },
            { model, step, values, adapter, optimizer },
          );
          // Older checkpoints go only once the new one is complete.
          const removed = o.saveTotalLimit ? pruneCheckpoints(work, o.saveTotalLimit) : [];
          // Named where it will be: a --force run's folder is swapped into `out` when the run ends.
          emit("onCheckpoint", join(o.out, `checkpoint-${s}`), s, removed);
        }
      }
      emit("onPhase", null);
      if (heldOut.size > 0 && lastEval?.step !== totalSteps) lastEval = await evaluate(totalSteps);
      firstEval ??= null;
      await step.release();

      // The result: an adapter (PEFT files) or a full model, in the run's folder itself.
      if (o.mode === "lora") {
        // A PiSSA adapter is saved as PEFT saves it: a rank-2r LoRA that applies to the ORIGINAL weights.
        writeAdapterFiles(work, pissaStart ? pissaToLora(adapter!, pissaStart) : adapter!);
      } else {
        writeFullModel(work, model, step, values);
      }
      savedBytes = dirBytes(work, (f) => f.endsWith(".safetensors"));
      if (replacing) swapInto(work, o.out);
    } catch (e) {
      // A failed replacing run leaves `out` as it was and no temporary folder.
      if (replacing) rmSync(work, { recursive: true, force: true });
      throw e;
    }
    const baseBytes = dirBytes(dir, (f) => f.endsWith(".safetensors"));
    model.weights.close();
    const summary: TrainSummary = {
      mode: o.mode,
      outDir: o.out,
      steps: totalSteps,
      seconds: (performance.now() - started) / 1000,
      trainableParams,
      totalParams: baseParams + (o.mode === "lora" ? trainableParams : 0),
      finalTrainLoss: lastLoss,
      firstEvalLoss: firstEval?.loss ?? null,
      finalEvalLoss: lastEval?.loss ?? null,
      savedBytes,
      baseBytes,
    };
    emit("onEnd", summary);
    return summary;
  }
}

/** The settings that shape what a run computes (checkpoint.ts's RunSettings), `maxLength` as capped. */
function recordedSettings(
  o: TrainOptions & typeof TRAIN_DEFAULTS,
  maxLength: number,
  dataFiles: readonly string[],
): RunSettings {
  return {
    maxSteps: o.maxSteps ?? null,
    epochs: o.epochs ?? null,
    lr: o.lr,
    schedule: o.schedule,
    warmupSteps: o.warmupSteps,
    weightDecay: o.weightDecay,
    maxGradNorm: o.maxGradNorm,
    batchSize: o.batchSize,
    gradAccum: o.gradAccum,
    seed: o.seed,
    maxLength,
    valFraction: o.valData ? 0 : o.valFraction,
    trainOnInputs: o.trainOnInputs ?? false,
    packing: o.packing ?? false,
    baseInt8: o.baseInt8 ?? false,
    data: o.data,
    // One file: its sha256, as before; several (a hub split): the sha256 of theirs, in order.
    dataSha256:
      dataFiles.length === 1
        ? fileContentHash(dataFiles[0]!)
        : createHash("sha256").update(dataFiles.map(fileContentHash).join("\n")).digest("hex"),
  };
}

/**
 * The local files of a --data / --val-data value: the path itself when it exists or names a data file
 * (a missing one is then preparation's one-line "no such file"), else a hub data set `org/name[@rev]`
 * whose split's files are downloaded (io/hub-dataset.ts).
 */
async function dataFilesOf(
  spec: string,
  split: string | undefined,
  flag: string,
  splitFlag: string,
): Promise<string[]> {
  const lower = spec.toLowerCase();
  if (existsSync(spec) || DATA_EXTENSIONS.some((e) => lower.endsWith(e))) return [spec];
  return resolveDataFiles(spec, { flag, splitFlag, ...(split !== undefined ? { split } : {}) });
}
