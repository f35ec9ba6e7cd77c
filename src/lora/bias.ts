/**
 * Trained biases (PEFT's `bias: "all"` or `"lora_only"`): the chosen layers' biases become trainable
 * and are saved in the adapter, under PEFT's names: `<path>.base_layer.bias` for a module LoRA wraps,
 * `<path>.bias` for any other. The adapter's bias then REPLACES the base bias (it is not added).
 */
import type { ModuleInfo } from "../models/module.js";
import { type Adapter, PEFT_PREFIX } from "./adapter.js";
import type { LoraConfig } from "./config.js";
import type { SelectedModule } from "./targets.js";

export interface TrainedBias {
  path: string;
  /** The PEFT key of the bias tensor. */
  key: string;
  size: number;
}

export function trainedBiases(
  config: Pick<LoraConfig, "bias">,
  modules: readonly ModuleInfo[],
  selected: readonly SelectedModule[],
): TrainedBias[] {
  if (config.bias === "none") return [];
  const wrapped = new Set(selected.filter((s) => s.kind === "linear").map((s) => s.path));
  return modules
    .filter((m) => m.kind === "linear" && m.bias && (config.bias === "all" || wrapped.has(m.path)))
    .map((m) => ({
      path: m.path,
      key: `${PEFT_PREFIX}${m.path}${wrapped.has(m.path) ? ".base_layer" : ""}.bias`,
      size: m.outFeatures,
    }));
}

/** The adapter's trained bias of `path`, whichever of PEFT's two names it is saved under. */
export function adapterBias(adapter: Adapter, path: string): Float32Array | undefined {
  return (
    adapter.tensors.get(`${PEFT_PREFIX}${path}.base_layer.bias`)?.data ??
    adapter.tensors.get(`${PEFT_PREFIX}${path}.bias`)?.data
  );
}
