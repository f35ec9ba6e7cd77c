/**
 * The training step as ONE onnxruntime session: (ids, attention mask, shifted labels, trainable
 * tensors) -> (mean token loss, a gradient per trainable tensor). The optimizer runs in TypeScript
 * on the returned gradients; the trainable tensors are fed each step, so the session never changes.
 *
 *   lora: trainable = every adapter's A and B, and with DoRA its magnitudes (graph inputs named by
 *         their PEFT keys); the base weights stay initializers pointing into the checkpoint files
 *         and get no gradient work.
 *   full: trainable = every weight of the model, fed as graph inputs.
 */
import { emitModel } from "../graph/emit.js";
import { grad } from "../graph/grad.js";
import type { Int8Forward } from "../graph/int8.js";
import { Graph, type Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import { Session, type SessionOptions, type TensorValue } from "../graph/runtime.js";
import { loraKeys, magnitudeKey } from "../lora/adapter.js";
import type { TrainedBias } from "../lora/bias.js";
import { DropoutInputs, type DropoutMaskInput, MaskBuffers, maskFeeds } from "../lora/dropout.js";
import { loraContext } from "../lora/inject.js";
import type { SelectedModule } from "../lora/targets.js";
import type { HfModel } from "../models/assemble-model.js";
import { baseContext, contextFromParams, Int8Feeds, int8Head } from "../models/base-context.js";
import { embeddingWeightName, expectedTensors } from "../models/family.js";
import { buildModel, IO_NAMES } from "../models/index.js";
import type { Int8Source } from "../models/int8-quantize.js";
import type { ModuleContext } from "../models/module.js";
import { declareInputs } from "../models/transformer.js";
import { LoraTsError } from "../util/errors.js";

export const TRAIN_IO = {
  targets: "targets",
  loss: "loss",
  dropoutRate: "lora_dropout_rate",
  grad: (name: string) => `grad:${name}`,
};

export type TrainSetup =
  | {
      mode: "lora";
      selected: readonly SelectedModule[];
      dropout: number;
      biases?: readonly TrainedBias[];
      /** Frozen weights that replace the checkpoint's (PiSSA's residuals), by module path. */
      residuals?: ReadonlyMap<string, Float32Array>;
      /** The unfused loss (logits, then cross-entropy): the reference the fused path is tested against. */
      plainLoss?: boolean;
      /** Frozen linear weights as int8 (DynamicQuantizeMatMul) in both the forward and backward products. */
      int8?: boolean;
      /** With int8: the weights quantized on worker threads meanwhile (Node; else quantized as built). */
      int8Weights?: Int8Source;
      /** Recompute each layer's activations in the backward pass (graph/checkpoint.ts): less memory. */
      checkpointLayers?: boolean;
      /** DoRA (use_dora): each module's magnitude is trained beside A and B (lora/dora.ts). */
      dora?: boolean;
      /** Causal attention in query blocks (models/query-blocks.ts); default 1, none. */
      queryBlocks?: number;
    }
  | { mode: "full"; checkpointLayers?: boolean; queryBlocks?: number };

export interface TrainParam {
  /** Graph input name: a PEFT key (lora) or a checkpoint tensor name (full). */
  name: string;
  shape: number[];
}

export interface Batch {
  ids: BigInt64Array;
  attentionMask: BigInt64Array;
  /** Labels already shifted: targets[t] is the token expected after position t (-100: none). */
  targets: BigInt64Array;
  batch: number;
  seq: number;
}

export class TrainStep {
  constructor(
    readonly session: Session,
    readonly params: TrainParam[],
    readonly dropoutMasks: readonly DropoutMaskInput[],
    readonly withGrads: boolean,
    /** Inputs with the same value on every run (int8 base weights). */
    readonly fixed: Record<string, TensorValue> = {},
  ) {}

  /** The dropout mask arrays, reused from run to run. */
  private readonly masks = new MaskBuffers();

  /**
   * Runs forward and backward. `dropoutSeed` picks this micro-batch's dropout masks; `train` false
   * turns dropout off (evaluation with the same session).
   */
  async run(
    batch: Batch,
    values: readonly Float32Array[],
    opts: { train: boolean; dropoutRate?: number; dropoutSeed?: number },
  ): Promise<{ loss: number; grads: Float32Array[] }> {
    const dims = [batch.batch, batch.seq];
    const feeds: Record<string, TensorValue> = {
      ...this.fixed,
      [IO_NAMES.ids]: { dtype: "int64", dims, data: batch.ids },
      [IO_NAMES.attentionMask]: { dtype: "int64", dims, data: batch.attentionMask },
      [TRAIN_IO.targets]: { dtype: "int64", dims, data: batch.targets },
    };
    this.params.forEach((p, i) => {
      feeds[p.name] = { dtype: "float32", dims: p.shape, data: values[i]! };
    });
    if (this.dropoutMasks.length > 0) {
      const rate = opts.train ? (opts.dropoutRate ?? 0) : 0;
      feeds[TRAIN_IO.dropoutRate] = { dtype: "float32", dims: [], data: Float32Array.of(rate) };
      const seed = opts.dropoutSeed ?? 0;
      Object.assign(feeds, maskFeeds(this.dropoutMasks, batch.batch, batch.seq, { rate, seed }, this.masks));
    }
    const out = await this.session.run(feeds);
    return {
      loss: (out[TRAIN_IO.loss]!.data as Float32Array)[0]!,
      grads: this.withGrads ? this.params.map((p) => out[TRAIN_IO.grad(p.name)]!.data as Float32Array) : [],
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Every weight of the model as a float32 graph input (a tied head reads the embedding's input). */
function fullContext(g: Graph, model: HfModel, params: TrainParam[], inputs: Value[]): ModuleContext {
  const shapes = expectedTensors(model.config);
  const byName = new Map<string, Value>();
  return contextFromParams(g, (name) => {
    const canonical =
      model.config.tieWordEmbeddings && name === "lm_head.weight" ? embeddingName(model) : name;
    let v = byName.get(canonical);
    if (!v) {
      const shape = shapes.get(canonical)!;
      v = g.input(canonical, "float32", shape);
      byName.set(canonical, v);
      params.push({ name: canonical, shape });
      inputs.push(v);
    }
    return v;
  });
}

export function embeddingName(model: HfModel): string {
  return embeddingWeightName(model.config);
}

/** The training step's graph before emission, with what a session needs to feed it. */
export interface TrainGraph {
  graph: Graph;
  /** The trainable graph inputs, in the order of the gradient outputs. */
  params: TrainParam[];
  dropout: DropoutInputs | null;
  /** int8 base weights fed on every run (`--base-int8`). */
  int8: Int8Feeds | null;
}

/**
 * Builds the training step's graph: the loss, and (`withGrads`) its gradient for every trainable
 * tensor. Kept apart from the session so tests can check the very graph `train` runs (e.g. promoted
 * to float64 for finite differences).
 */
export function buildTrainGraph(model: HfModel, setup: TrainSetup, withGrads = true): TrainGraph {
  const g = new Graph();
  const params: TrainParam[] = [];
  const trainable: Value[] = [];
  let loss: Value;
  let dropout: DropoutInputs | null = null;
  const int8 = setup.mode === "lora" && setup.int8 ? new Int8Feeds(setup.int8Weights?.shapes) : null;
  if (setup.mode === "full") {
    const ctx = fullContext(g, model, params, trainable);
    loss = buildForward(g, model, ctx, {
      plain: false,
      trainWeight: true,
      checkpointLayers: setup.checkpointLayers,
      queryBlocks: setup.queryBlocks,
    });
  } else {
    refuseDoraWithInt8(setup.dora, setup.int8);
    dropout = setup.dropout > 0 ? new DropoutInputs(g, g.input(TRAIN_IO.dropoutRate, "float32", [])) : null;
    const replaced = new Map([...(setup.residuals ?? [])].map(([path, w]) => [`${path}.weight`, w]));
    const base = baseContext(g, model.weights, replaced, { int8: int8 ?? undefined });
    const lora = loraContext(base, setup.selected, {
      scaling: "config",
      dropout: dropout ?? undefined,
      biases: setup.biases,
      dora: setup.dora,
    });
    const headAdapted =
      setup.selected.some((m) => m.path === "lm_head") || (setup.residuals?.has("lm_head") ?? false);
    const plain = headAdapted || setup.plainLoss === true;
    loss = buildForward(g, model, lora, {
      plain,
      checkpointLayers: setup.checkpointLayers,
      queryBlocks: setup.queryBlocks,
      int8Head: int8 && !plain ? int8Head(g, model.weights, int8, "lm_head.weight") : undefined,
    });
    // The LoRA inputs exist once the model is built; their ranks are symbolic, fixed here by the config.
    const shapes = new Map<string, number[]>();
    for (const m of setup.selected) {
      const keys = loraKeys(m.path, m.kind);
      shapes.set(keys.A, [m.r, m.in]);
      shapes.set(keys.B, [m.out, m.r]);
      if (setup.dora) shapes.set(magnitudeKey(m.path), [m.out]);
    }
    for (const b of setup.biases ?? []) shapes.set(b.key, [b.size]);
    for (const [name, v] of lora.loraInputs) {
      params.push({ name, shape: shapes.get(name)! });
      trainable.push(v);
    }
  }
  g.output(loss, TRAIN_IO.loss);
  if (withGrads) {
    grad(loss, trainable).forEach((gv, i) => {
      g.output(gv, TRAIN_IO.grad(params[i]!.name));
    });
  }
  return { graph: g, params, dropout, int8 };
}

/** DoRA's weight norms need the float32 base weights, which --base-int8 does not keep. */
export function refuseDoraWithInt8(dora: boolean | undefined, int8: boolean | undefined): void {
  if (dora && int8)
    throw new LoraTsError(
      "--base-int8 cannot train DoRA (use_dora): its weight norms need the float32 base weights",
    );
}

/** `withGrads` false builds the loss alone (evaluation). */
export async function buildTrainStep(
  model: HfModel,
  setup: TrainSetup,
  session: SessionOptions = {},
  withGrads = true,
  /** Told what is being done: for long builds, so that the user sees what takes the time. */
  onPhase: (what: string) => void = () => {},
): Promise<TrainStep> {
  onPhase("building the training graph");
  const { graph, params, dropout, int8 } = buildTrainGraph(model, setup, withGrads);
  onPhase(`creating the onnxruntime session (${graph.nodes.length.toLocaleString("en-US")} graph nodes)`);
  const bytes = emitModel(graph, { name: `${model.config.modelType}_train` });
  const s = await Session.create(bytes, {
    ...TRAIN_SESSION_DEFAULTS,
    ...session,
    config: { ...TRAIN_SESSION_DEFAULTS.config, ...session.config },
    ...model.weights.sessionFiles(),
  });
  if (setup.mode === "lora" && setup.int8Weights && int8) {
    onPhase("waiting for the int8 weights");
    try {
      int8.fill(await setup.int8Weights.ready);
    } catch (e) {
      await s.release();
      throw e;
    }
  }
  return new TrainStep(s, params, dropout?.masks ?? [], withGrads, int8?.feeds);
}

/**
 * The forward pass and its loss. When the output head is a plain (un-adapted) linear layer, the loss
 * is taken from the final hidden state with the fused head + cross-entropy (nn.frozenHeadCrossEntropy
 * or nn.trainedHeadCrossEntropy),
 * and the model's own logits are left unused (pruned from the graph).
 */
function buildForward(
  g: Graph,
  model: HfModel,
  ctx: ModuleContext,
  opts: {
    plain: boolean;
    trainWeight?: boolean;
    checkpointLayers?: boolean;
    queryBlocks?: number;
    int8Head?: Int8Forward;
  },
): Value {
  const inputs = declareInputs(g, model.config, { attentionMask: true });
  const targets = g.input(TRAIN_IO.targets, "int64", ["batch", "seq"]);
  const { logits, hidden } = buildModel(ctx, model.config, inputs, {
    checkpointLayers: opts.checkpointLayers,
    queryBlocks: opts.queryBlocks,
  });
  if (opts.plain) return nn.crossEntropy(logits, targets);
  const head = ctx.param("lm_head.weight");
  return opts.trainWeight
    ? nn.trainedHeadCrossEntropy(hidden, head, targets)
    : nn.frozenHeadCrossEntropy(hidden, head, targets, { int8: opts.int8Head });
}

/**
 * Session settings measured best for training steps (bench/RESULTS.md): the CPU arena keeps the big
 * activation buffers across steps (-20% time: no page faults re-touching freed blocks); no memory
 * pattern, whose planned block for symbolic shapes over-allocated (GPT-2-small 4×256 peak RSS 3.0 GB
 * -> 1.8 GB); no prepacking, which copies every frozen weight (-0.6 GB) for no measurable speed here.
 */
export const TRAIN_SESSION_DEFAULTS: SessionOptions = {
  memArena: true,
  memPattern: false,
  config: { "session.disable_prepacking": "1" },
};

/** Shifts HF-style labels left by one: the loss at position t scores the token at t + 1. */
export function shiftLabels(labels: BigInt64Array, batch: number, seq: number): BigInt64Array {
  const out = new BigInt64Array(labels.length).fill(-100n);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seq; t++) out[b * seq + t] = labels[b * seq + t + 1]!;
  }
  return out;
}

/** Positions whose target is scored (not -100). */
export function scoredTokens(targets: BigInt64Array): number {
  let n = 0;
  for (const t of targets) if (t !== -100n) n++;
  return n;
}
