/**
 * What a LoRA run trains and its starting values: the PEFT config from the run's settings, the modules
 * it selects, the adapter as initialised (seeded A, zero B; or PiSSA's A₀, B₀ with the residual base
 * weights), the trained biases starting from the base model's, and the TrainSetup the training graph
 * is built from. The CLI's trainer and the browser's run start from the same values through this.
 */
import { type Adapter, createAdapter } from "../lora/adapter.js";
import { type TrainedBias, trainedBiases } from "../lora/bias.js";
import { defaultTargets, type LoraConfig, makeLoraConfig } from "../lora/config.js";
import { selectTargets } from "../lora/targets.js";
import type { HfModel } from "../models/assemble-model.js";
import { listModules } from "../models/modules.js";
import { refuseDoraWithInt8, type TrainSetup } from "./train-graph.js";

/** The run's LoRA settings, named as TrainOptions names them. */
export interface LoraSettings {
  r: number;
  alpha: number;
  dropout: number;
  /** Default: the model type's PEFT default. */
  targets?: string[] | string;
  rslora?: boolean;
  /** DoRA (PEFT's use_dora): a trained magnitude per output beside A and B. */
  dora?: boolean;
  init?: LoraConfig["init_lora_weights"];
  bias?: LoraConfig["bias"];
  /** Replaces all of the above when given. */
  loraConfig?: LoraConfig;
  /** Recorded as base_model_name_or_path. */
  baseModel: string;
  seed: number;
}

/** The config and what it selects, before anything is initialised (for checks such as memory). */
export function loraSelection(model: HfModel, s: LoraSettings) {
  const config =
    s.loraConfig ??
    makeLoraConfig({
      r: s.r,
      lora_alpha: s.alpha,
      lora_dropout: s.dropout,
      target_modules: s.targets ?? defaultTargets(model.config.modelType),
      use_rslora: s.rslora ?? false,
      use_dora: s.dora ?? false,
      init_lora_weights: s.init ?? true,
      bias: s.bias ?? "none",
      base_model_name_or_path: s.baseModel,
    });
  const modules = listModules(model.config);
  const selected = selectTargets(config, modules, { modelType: model.config.modelType });
  const biases: TrainedBias[] = trainedBiases(config, modules, selected);
  return { config, selected, biases };
}

export interface LoraStart {
  adapter: Adapter;
  /** PiSSA's initial A₀, B₀ (the saved adapter is converted against them), else null. */
  pissaStart: Adapter | null;
  setup: TrainSetup & { mode: "lora" };
}

/** Initialises the adapter of `selection` (see the file comment). */
export function startLora(
  model: HfModel,
  selection: ReturnType<typeof loraSelection>,
  seed: number,
  graph: { plainLoss?: boolean; int8?: boolean; checkpointLayers?: boolean } = {},
): LoraStart {
  const { config, selected, biases } = selection;
  // Before the adapter is created or any weight is quantized.
  refuseDoraWithInt8(config.use_dora, graph.int8);
  // PiSSA: A and B from W's top singular vectors, the frozen weight becomes the residual.
  const created = createAdapter(config, selected, {
    seed,
    baseWeight: (path) => model.weights.readFloat32(`${path}.weight`),
  });
  const adapter = created.adapter;
  const pissaStart = created.residuals.size > 0 ? cloneAdapter(adapter) : null;
  for (const b of biases) {
    const data = model.weights.readFloat32(`${b.path}.bias`);
    adapter.tensors.set(b.key, { shape: [b.size], data, dtype: "float32" });
  }
  const setup = {
    mode: "lora" as const,
    selected,
    dropout: config.lora_dropout,
    biases,
    residuals: created.residuals,
    plainLoss: graph.plainLoss,
    int8: graph.int8,
    checkpointLayers: graph.checkpointLayers,
    dora: config.use_dora,
  };
  return { adapter, pissaStart, setup };
}

function cloneAdapter(a: Adapter): Adapter {
  const tensors = new Map([...a.tensors].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
  return { ...a, tensors };
}
