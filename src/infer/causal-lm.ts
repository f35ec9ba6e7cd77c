/**
 * A loaded causal language model ready to generate: the forward session with a key/value cache and
 * an attention mask (it serves both the prefill, at past length 0, and the one-token decode steps),
 * plus the tokenizer when the folder has one. Platform-neutral; load-causal-lm.ts opens a folder.
 */
import type { Tokenizer } from "../data/tokenizer.js";
import type { SessionOptions, TensorValue } from "../graph/runtime.js";
import type { Adapter } from "../lora/adapter.js";
import { loraContext } from "../lora/inject.js";
import { AdapterSet } from "../lora/serve.js";
import type { HfModel } from "../models/assemble-model.js";
import {
  type CacheTensors,
  type ContextWrapper,
  emptyCache,
  type ForwardResult,
  type ForwardRunner,
  forwardRunner,
} from "../models/index.js";
import { listModules } from "../models/modules.js";
import { LoraTsError } from "../util/errors.js";

export interface LoadOptions {
  /** LoRA adapters to serve beside the base model, chosen per call by name. */
  adapters?: { name: string; dir: string }[];
  /** Wraps the base layers some other way; its inputs are then passed as `extra` feeds. */
  wrapContext?: ContextWrapper;
  session?: SessionOptions;
}

export class CausalLM {
  private constructor(
    readonly runner: ForwardRunner,
    readonly tokenizer: Tokenizer | null,
    /** The served adapters, or null when none were loaded. */
    readonly adapters: AdapterSet | null,
  ) {}

  /**
   * From an opened model, its tokenizer (null: none) and the adapters to serve beside it, by name
   * (checked against the model here).
   */
  static async fromModel(
    model: HfModel,
    tokenizer: Tokenizer | null,
    opts: {
      adapters?: { name: string; adapter: Adapter }[];
      wrapContext?: ContextWrapper;
      session?: SessionOptions;
    } = {},
  ): Promise<CausalLM> {
    let adapters: AdapterSet | null = null;
    let wrapContext = opts.wrapContext;
    if (opts.adapters && opts.adapters.length > 0) {
      const set = new AdapterSet(
        listModules(model.config),
        model.config.modelType,
        (path) => model.weights.readFloat32(`${path}.bias`),
        (path) => model.weights.readFloat32(`${path}.weight`),
      );
      for (const a of opts.adapters) set.add(a.name, a.adapter);
      const union = set.union();
      const biases = set.biasUnion();
      // DoRA factor inputs only when a DoRA adapter is loaded: LoRA-only graphs stay as they were.
      const dora = set.usesDora();
      wrapContext = (base) => loraContext(base, union, { scaling: "fed", biases, dora });
      adapters = set;
    }
    const runner = await forwardRunner(model, {
      kvCache: true,
      attentionMask: true,
      session: opts.session,
      wrapContext,
    });
    return new CausalLM(runner, tokenizer, adapters);
  }

  /** Graph feeds that select a served adapter by name (null: the base model). */
  adapterFeeds(name: string | null): Record<string, TensorValue> {
    if (!this.adapters) {
      if (name !== null) throw new LoraTsError(`no adapters are loaded, so "${name}" cannot be used`);
      return {};
    }
    return this.adapters.feeds(name);
  }

  get config() {
    return this.runner.config;
  }

  get model() {
    return this.runner.model;
  }

  emptyCache(batch: number): CacheTensors[] {
    return emptyCache(this.config, batch);
  }

  /**
   * One forward step: `ids` [batch][seq] after `cache`; `mask` [batch][past+seq] with 1 for real
   * tokens and 0 for padding (default: all 1).
   */
  async step(
    ids: number[][],
    cache: CacheTensors[],
    mask?: number[][],
    extra: Record<string, TensorValue> = {},
  ): Promise<ForwardResult> {
    const past = cache[0]?.key.dims[2] ?? 0;
    const attentionMask = mask ?? ids.map((r) => new Array<number>(past + r.length).fill(1));
    return this.runner.run({ ids, attentionMask, past: cache }, extra);
  }

  /** Logits at every position of one sequence, [seq][vocab]. */
  async logits(ids: number[], extra: Record<string, TensorValue> = {}): Promise<Float32Array[]> {
    const { logits } = await this.step([ids], this.emptyCache(1), undefined, extra);
    const vocab = logits.dims[2]!;
    const data = logits.data as Float32Array;
    return ids.map((_, t) => data.slice(t * vocab, (t + 1) * vocab));
  }

  async release(): Promise<void> {
    await this.runner.close();
  }
}
