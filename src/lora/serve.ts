/**
 * Several adapters beside one base model. The serving graph is built once over the union of the
 * modules any loaded adapter targets, with each module's scaling a graph input (inject.ts, scaling
 * "fed"); choosing an adapter per call is only a matter of which tensors are fed: the chosen
 * adapter's A, B and s, and zeros (rank 1, s = 0) for modules it does not touch. Choosing none
 * feeds zeros everywhere, which gives exactly the base model's outputs.
 *
 * When some loaded adapter uses DoRA, every module of the union also has a DoRA factor input
 * f = m / ‖W + s·B·A‖ per output (inject.ts, dora.ts), computed once per adapter from its tensors
 * and the base weights; it is 1 for a plain LoRA adapter, the base model and untouched modules, where
 * the DoRA form is the LoRA one.
 */
import type { TensorValue } from "../graph/runtime.js";
import type { ModuleInfo } from "../models/module.js";
import { LoraTsError } from "../util/errors.js";
import { type Adapter, loraKeys, PEFT_PREFIX, validateAdapter } from "./adapter.js";
import { adapterBias, type TrainedBias, trainedBiases } from "./bias.js";
import { doraFactorInputName, scalingInputName } from "./inject.js";
import { moduleDoraFactor } from "./merge.js";
import type { SelectedModule } from "./targets.js";

interface Loaded {
  adapter: Adapter;
  selected: SelectedModule[];
  biases: TrainedBias[];
  feeds?: Record<string, TensorValue>;
}

export class AdapterSet {
  private readonly loaded = new Map<string, Loaded>();

  constructor(
    readonly modules: readonly ModuleInfo[],
    readonly modelType: string,
    /** The base model's bias of a layer, fed where an adapter trains biases and the chosen one does not. */
    private readonly baseBias: (path: string) => Float32Array,
    /** The base model's weight of a layer in its storage layout, read for DoRA's factors. */
    private readonly baseWeight?: (path: string) => Float32Array,
  ) {}

  /** Whether some loaded adapter uses DoRA: the serving graph then has DoRA factor inputs. */
  usesDora(): boolean {
    return [...this.loaded.values()].some((l) => l.adapter.config.use_dora);
  }

  get names(): string[] {
    return [...this.loaded.keys()];
  }

  /** Adds an adapter under `name`, checking every tensor against the model. */
  add(name: string, adapter: Adapter): void {
    if (this.loaded.has(name)) throw new LoraTsError(`adapter name "${name}" is used twice`);
    const selected = validateAdapter(adapter, this.modules, { modelType: this.modelType });
    if (adapter.config.use_dora && !this.baseWeight)
      throw new LoraTsError(`adapter "${name}" uses DoRA, which this server cannot serve (no base weights)`);
    this.loaded.set(name, {
      adapter,
      selected,
      biases: trainedBiases(adapter.config, this.modules, selected),
    });
  }

  /** Every module some adapter targets (rank and scaling are per adapter, fed at run time). */
  union(): SelectedModule[] {
    const byPath = new Map<string, SelectedModule>();
    for (const { selected } of this.loaded.values()) {
      for (const s of selected) if (!byPath.has(s.path)) byPath.set(s.path, s);
    }
    // Keep the model's module order, so graph inputs are declared in a stable order.
    return this.modules.flatMap((m) => byPath.get(m.path) ?? []);
  }

  /**
   * Layers whose bias some adapter trains. In the serving graph their bias is an input under one
   * canonical name, whichever of PEFT's two names the adapter saved it under.
   */
  biasUnion(): TrainedBias[] {
    const byPath = new Map<string, TrainedBias>();
    for (const { biases } of this.loaded.values()) {
      for (const b of biases) byPath.set(b.path, { ...b, key: `${PEFT_PREFIX}${b.path}.bias` });
    }
    return [...byPath.values()];
  }

  /** Graph feeds for the chosen adapter, or for the base model (null). */
  feeds(name: string | null): Record<string, TensorValue> {
    const chosen = name === null ? undefined : this.loaded.get(name);
    if (name !== null && !chosen) {
      throw new LoraTsError(`no adapter named "${name}" (loaded: ${this.names.join(", ") || "none"})`);
    }
    if (chosen?.feeds) return chosen.feeds;
    const mine = new Map(chosen?.selected.map((s) => [s.path, s]));
    const feeds: Record<string, TensorValue> = {};
    const dora = this.usesDora();
    for (const u of this.union()) {
      const keys = loraKeys(u.path, u.kind);
      const s = mine.get(u.path);
      if (s && chosen) {
        const A = chosen.adapter.tensors.get(keys.A)!;
        const B = chosen.adapter.tensors.get(keys.B)!;
        feeds[keys.A] = { dtype: "float32", dims: A.shape, data: A.data };
        feeds[keys.B] = { dtype: "float32", dims: B.shape, data: B.data };
      } else {
        feeds[keys.A] = { dtype: "float32", dims: [1, u.in], data: new Float32Array(u.in) };
        feeds[keys.B] = { dtype: "float32", dims: [u.out, 1], data: new Float32Array(u.out) };
      }
      feeds[scalingInputName(u.path)] = {
        dtype: "float32",
        dims: [],
        data: Float32Array.of(s?.scaling ?? 0),
      };
      if (dora) {
        const data = s && chosen ? this.doraFactorOf(chosen.adapter, s) : new Float32Array(u.out).fill(1);
        feeds[doraFactorInputName(u.path)] = { dtype: "float32", dims: [u.out], data };
      }
    }
    for (const b of this.biasUnion()) {
      const data = (chosen && adapterBias(chosen.adapter, b.path)) ?? this.baseBias(b.path);
      feeds[b.key] = { dtype: "float32", dims: [b.size], data };
    }
    if (chosen) chosen.feeds = feeds;
    return feeds;
  }

  /** f = m / ‖W + s·B·A‖ of one module of a DoRA adapter; ones for a plain LoRA one. */
  private doraFactorOf(adapter: Adapter, s: SelectedModule): Float32Array {
    if (!adapter.config.use_dora) return new Float32Array(s.out).fill(1);
    return moduleDoraFactor(adapter, s, this.baseWeight!(s.path));
  }
}
