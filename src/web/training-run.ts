/**
 * A LoRA training run held in memory, for the browser: the CLI trainer's data preparation, LoRA
 * initialisation (lora-setup.ts) and optimizer step (optimizer-step.ts) over a model opened from
 * files, with no folder to write. It advances step by step until done or asked to stop, and can be
 * continued after a stop; the adapter is read out as PEFT's two files at any point.
 *
 * Same seed, data and settings as `lora-ts train` give the same losses (within float rounding of
 * another onnxruntime build): the same examples, loader order, initial A and B, and dropout masks.
 */
import { DataLoader, padBatch, padIdOf, splitTrainVal } from "../data/batching.js";
import { buildExamples, describeData, type Example } from "../data/examples.js";
import { parseDataset } from "../data/formats.js";
import type { SessionOptions } from "../graph/session-options.js";
import { type Adapter, adapterFileBytes, pissaToLora } from "../lora/adapter.js";
import { targetModules } from "../lora/targets.js";
import { loraSelection, startLora } from "../train/lora-setup.js";
import { AdamW } from "../train/optimizer.js";
import { optimizerStep, type StepSettings } from "../train/optimizer-step.js";
import { buildTrainStep, shiftLabels, type TrainSetup, type TrainStep } from "../train/train-graph.js";
import { LoraTsError } from "../util/errors.js";
import type { WebModel } from "./model-files.js";
import type { DataSummaryMessage, FileMap, StepMessage, WebTrainSettings } from "./protocol.js";

export class TrainingRun {
  /** Optimizer steps done. */
  stepsDone = 0;
  /** Seconds spent stepping (pauses excluded) and tokens scored, for tokens/s. */
  private stepSeconds = 0;
  private tokens = 0;
  private lastLoss: number | null = null;

  private constructor(
    private readonly web: WebModel,
    private step: TrainStep,
    private readonly setup: TrainSetup,
    private readonly session: SessionOptions,
    private readonly values: Float32Array[],
    private readonly optimizer: AdamW,
    private readonly loader: DataLoader,
    private readonly settings: StepSettings,
    readonly adapter: Adapter,
    private readonly pissaStart: Adapter | null,
    readonly data: DataSummaryMessage,
    private readonly firstBatch: Example[],
  ) {}

  /** Prepares the data and the adapter, and builds the training session on `session.device`. */
  static async create(
    web: WebModel,
    data: { name: string; text: string },
    s: WebTrainSettings,
    session: SessionOptions = {},
  ): Promise<TrainingRun> {
    const { model, tokenizer } = web;
    checkSettings(s);
    // The form always holds a value, so it is capped by the model's context (and the page told so),
    // where --max-length given explicitly beyond it is an error.
    const context = model.config.maxPositions;
    const maxLength = Math.min(s.maxLength, context);
    const file = parseDataset(data.text, data.name);
    const built = buildExamples(file, tokenizer, { maxLength });
    if (built.examples.length === 0)
      throw new LoraTsError(`${data.name}: no example has a token to train on`);
    const { train } = splitTrainVal(built.examples, 0, s.seed);
    const loader = new DataLoader(train, { batchSize: s.batchSize, padId: padIdOf(tokenizer), seed: s.seed });
    const selection = loraSelection(model, {
      r: s.r,
      alpha: s.alpha,
      dropout: s.dropout,
      targets: s.targets.trim() === "" ? undefined : targetModules(s.targets.trim()),
      baseModel: model.dir,
      seed: s.seed,
    });
    const start = startLora(model, selection, s.seed);
    const step = await buildTrainStep(model, start.setup, session);
    const values = step.params.map((p) => start.adapter.tensors.get(p.name)!.data);
    const optimizer = new AdamW(values, { lr: s.lr, weightDecay: 0 });
    const settings: StepSettings = {
      gradAccum: 1,
      seed: s.seed,
      dropoutRate: selection.config.lora_dropout,
      maxGradNorm: 1,
      lr: s.lr,
      schedule: s.schedule,
      warmupSteps: s.warmupSteps,
      totalSteps: s.steps,
    };
    const summary: DataSummaryMessage = {
      name: data.name,
      format: file.format,
      rows: built.summary.rows,
      examples: built.summary.examples,
      tokens: built.summary.trainedTokens,
      notes: [
        describeData(built.summary),
        ...(s.maxLength > context
          ? [`max length ${s.maxLength} capped to the model's context of ${context} tokens`]
          : []),
      ],
    };
    return new TrainingRun(
      web,
      step,
      start.setup,
      session,
      values,
      optimizer,
      loader,
      settings,
      start.adapter,
      start.pissaStart,
      summary,
      train.slice(0, s.batchSize),
    );
  }

  get totalSteps(): number {
    return this.settings.totalSteps;
  }

  get trainableParams(): number {
    return this.values.reduce((n, v) => n + v.length, 0);
  }

  /** Seconds spent stepping so far (pauses excluded). */
  get seconds(): number {
    return this.stepSeconds;
  }

  get finalLoss(): number | null {
    return this.lastLoss;
  }

  /**
   * Steps until the run is done ("done") or `shouldStop()` says so between steps ("stopped"); `onStep`
   * hears each step. A stopped run continues with the next call, as if it had not stopped. In a
   * worker, `shouldStop` must give the event loop a turn (a macrotask), or a stop message is never
   * delivered: onnxruntime-web's run resolves without one.
   */
  async advance(
    shouldStop: () => boolean | Promise<boolean>,
    onStep: (m: StepMessage) => void,
  ): Promise<"done" | "stopped"> {
    while (this.stepsDone < this.totalSteps) {
      if (await shouldStop()) return "stopped";
      const s = this.stepsDone + 1;
      const t0 = performance.now();
      const r = await optimizerStep(
        { step: this.step, values: this.values, optimizer: this.optimizer, loader: this.loader },
        this.settings,
        s,
      );
      if (!r.applied)
        throw new LoraTsError(
          `the loss became ${Number.isFinite(r.loss) ? `finite but the gradient norm is ${r.gradNorm}` : r.loss} ` +
            `at step ${s} (lr ${this.settings.lr}); training stopped. Lower the learning rate.`,
        );
      this.stepSeconds += (performance.now() - t0) / 1000;
      this.tokens += r.tokens;
      this.stepsDone = s;
      this.lastLoss = r.loss;
      const rate = this.tokens / Math.max(this.stepSeconds, 1e-9);
      onStep({
        type: "step",
        step: s,
        totalSteps: this.totalSteps,
        loss: r.loss,
        lr: r.lr,
        gradNorm: r.gradNorm,
        tokens: r.tokens,
        tokensPerSec: rate,
        elapsedSec: this.stepSeconds,
        etaSec: (this.stepSeconds / s) * (this.totalSteps - s),
      });
    }
    return "done";
  }

  /**
   * The loss and gradients of the run's first batch at the current values, without dropout, on
   * `device`: a probe that a backend computes what WebAssembly computes (it neither steps nor moves
   * the loader).
   */
  async probe(device: "wasm" | "webgpu"): Promise<{ loss: number; grads: Float32Array[] }> {
    const probe = await buildTrainStep(this.web.model, this.setup, { ...this.session, device });
    try {
      const b = padBatch(this.firstBatch, padIdOf(this.web.tokenizer));
      const targets = shiftLabels(b.labels, b.batch, b.seq);
      return await probe.run({ ...b, targets }, this.values, { train: false });
    } finally {
      await probe.release();
    }
  }

  /** Rebuilds the training session on `device` (the values, optimizer and loader carry on). */
  async useDevice(device: "wasm" | "webgpu"): Promise<void> {
    const next = await buildTrainStep(this.web.model, this.setup, { ...this.session, device });
    await this.step.release();
    this.step = next;
  }

  /** The adapter as it stands, as PEFT's adapter_config.json and adapter_model.safetensors. */
  adapterFiles(): FileMap {
    return adapterFileBytes(this.pissaStart ? pissaToLora(this.adapter, this.pissaStart) : this.adapter);
  }

  async release(): Promise<void> {
    await this.step.release();
  }
}

function checkSettings(s: WebTrainSettings): void {
  const positiveInt = ["r", "steps", "maxLength", "batchSize"] as const;
  for (const k of positiveInt)
    if (!Number.isInteger(s[k]) || s[k] < 1)
      throw new LoraTsError(`${k}: expected a whole number ≥ 1, got ${s[k]}`);
  if (!Number.isInteger(s.seed)) throw new LoraTsError(`seed: expected a whole number, got ${s.seed}`);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0)
    throw new LoraTsError(`warmup: expected a whole number ≥ 0, got ${s.warmupSteps}`);
  if (!(s.alpha > 0)) throw new LoraTsError(`alpha: expected a number > 0, got ${s.alpha}`);
  if (!(s.lr > 0)) throw new LoraTsError(`lr: expected a number > 0, got ${s.lr}`);
  if (!(s.dropout >= 0 && s.dropout < 1))
    throw new LoraTsError(`dropout: expected a number in [0, 1), got ${s.dropout}`);
}
