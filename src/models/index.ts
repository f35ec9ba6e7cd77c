/**
 * Model families behind one entry point, and a ready-to-run forward (logits) session for a Hugging
 * Face model folder.
 */
import { emitModel } from "../graph/emit.js";
import { Graph } from "../graph/ir.js";
import { Session, type SessionOptions, type TensorValue } from "../graph/runtime.js";
import { LoraTsError } from "../util/errors.js";
import type { HfModel } from "./assemble-model.js";
import { baseContext } from "./base-context.js";
import type { ModelConfig } from "./config.js";
import { familyOf } from "./family.js";
import type { ModuleContext } from "./module.js";
import {
  type BuildOptions,
  declareInputs,
  declareOutputs,
  type ForwardInputs,
  type ForwardOutputs,
  type ForwardSignature,
  IO_NAMES,
} from "./transformer.js";

export type {
  BuildOptions,
  ForwardInputs,
  ForwardOutputs,
  ForwardSignature,
  KeyValue,
} from "./transformer.js";
export { declareInputs, declareOutputs, IO_NAMES } from "./transformer.js";

/** Builds the forward pass of `cfg`'s family into ctx.graph. */
export function buildModel(
  ctx: ModuleContext,
  cfg: ModelConfig,
  inputs: ForwardInputs,
  opts: BuildOptions = {},
): ForwardOutputs {
  return familyOf(cfg).build(ctx, cfg, inputs, opts);
}

/** Per layer, a cache tensor pair as fed to / returned by a session. */
export interface CacheTensors {
  key: TensorValue;
  value: TensorValue;
}

export interface ForwardFeeds {
  /** Token ids, one row per sequence (rows of equal length). */
  ids: number[][];
  positions?: number[][];
  attentionMask?: number[][];
  /** The previous call's `present`; default with a cache: empty (past length 0). */
  past?: CacheTensors[];
}

export interface ForwardResult {
  /** float32 [batch, seq, vocab] */
  logits: TensorValue;
  present: CacheTensors[] | null;
}

/** A logits session over a model folder's frozen weights. */
export class ForwardRunner {
  constructor(
    readonly model: HfModel,
    readonly session: Session,
    readonly signature: ForwardSignature,
  ) {}

  get config(): ModelConfig {
    return this.model.config;
  }

  /** `extra`: further graph inputs, such as adapter tensors. */
  async run(feeds: ForwardFeeds, extra: Record<string, TensorValue> = {}): Promise<ForwardResult> {
    const cfg = this.config;
    const batch = feeds.ids.length;
    const f: Record<string, TensorValue> = { ...extra, [IO_NAMES.ids]: int64Matrix(feeds.ids) };
    if (feeds.positions) f[IO_NAMES.positions] = int64Matrix(feeds.positions);
    if (feeds.attentionMask) f[IO_NAMES.attentionMask] = int64Matrix(feeds.attentionMask);
    for (const [key, given] of [
      ["positions", feeds.positions],
      ["attentionMask", feeds.attentionMask],
    ] as const) {
      if (Boolean(given) !== Boolean(this.signature[key]))
        throw new LoraTsError(
          `forward session: ${key} ${given ? "given but not declared" : "declared but not given"}`,
        );
    }
    if (this.signature.kvCache) {
      const past = feeds.past ?? emptyCache(cfg, batch);
      past.forEach((kv, i) => {
        f[IO_NAMES.pastKey(i)] = kv.key;
        f[IO_NAMES.pastValue(i)] = kv.value;
      });
    }
    const out = await this.session.run(f);
    const present = this.signature.kvCache
      ? Array.from({ length: cfg.layers }, (_, i) => ({
          key: out[IO_NAMES.presentKey(i)]!,
          value: out[IO_NAMES.presentValue(i)]!,
        }))
      : null;
    return { logits: out[IO_NAMES.logits]!, present };
  }

  async close(): Promise<void> {
    await this.session.release();
    this.model.weights.close();
  }
}

/** Wraps the base layers, e.g. with LoRA adapters whose tensors are then fed as extra inputs. */
export type ContextWrapper = (base: ModuleContext) => ModuleContext;

/** Builds the logits graph for an opened model folder. */
export function buildForwardGraph(
  model: HfModel,
  signature: ForwardSignature = {},
  wrap?: ContextWrapper,
): Graph {
  const g = new Graph();
  const base = baseContext(g, model.weights);
  const inputs = declareInputs(g, model.config, signature);
  declareOutputs(g, buildModel(wrap ? wrap(base) : base, model.config, inputs));
  return g;
}

export type ForwardOptions = ForwardSignature & { session?: SessionOptions; wrapContext?: ContextWrapper };

/** Opens a Hugging Face model folder and creates a logits session over its weights. */

/**
 * Session config of inference (logits / decode) sessions, under the caller's own entries. Worker
 * threads do not spin between ops: a decode step is hundreds of small kernels, and on a shared or
 * oversubscribed machine (or beside a server's HTTP thread) a spinning worker burns the time slice the
 * other thread needs. GPT-2-small decode, batch 1, 2 threads, same run (bench/serve.ts): 42 tokens/s
 * spinning, 47 not; SmolLM-135M 21 and 33.
 */
export const INFERENCE_SESSION_CONFIG: Readonly<Record<string, string>> = {
  "session.intra_op.allow_spinning": "0",
};

/** A logits session over an opened model folder (closed with the runner, or here on failure). */
export async function forwardRunner(model: HfModel, opts: ForwardOptions = {}): Promise<ForwardRunner> {
  const { session: sessionOptions, wrapContext, ...signature } = opts;
  try {
    const g = buildForwardGraph(model, signature, wrapContext);
    const bytes = emitModel(g, { name: `${model.config.modelType}_forward` });
    const session = await Session.create(bytes, {
      ...sessionOptions,
      config: { ...INFERENCE_SESSION_CONFIG, ...sessionOptions?.config },
      ...model.weights.sessionFiles(),
    });
    return new ForwardRunner(model, session, signature);
  } catch (e) {
    model.weights.close();
    throw e;
  }
}

/** A cache holding no tokens yet, for `batch` rows. */
export function emptyCache(cfg: ModelConfig, batch: number): CacheTensors[] {
  const t = (): TensorValue => ({
    dtype: "float32",
    dims: [batch, cfg.kvHeads, 0, cfg.headDim],
    data: new Float32Array(0),
  });
  return Array.from({ length: cfg.layers }, () => ({ key: t(), value: t() }));
}

function int64Matrix(rows: number[][]): TensorValue {
  const width = rows[0]?.length ?? 0;
  if (rows.some((r) => r.length !== width)) throw new LoraTsError("all rows must have the same length");
  const data = BigInt64Array.from(rows.flat(), (v) => BigInt(v));
  return { dtype: "int64", dims: [rows.length, width], data };
}
