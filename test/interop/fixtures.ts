/** Adapters with random, non-zero B for the interop tests (a fresh adapter's B is zero: no effect). */
import { join } from "node:path";
import { createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { tempDir } from "../models/fixtures.js";

export interface AdapterSpec {
  targets: string[] | string;
  r: number;
  alpha: number;
  rslora?: boolean;
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  seed: number;
  /** Size of B's entries (A is PEFT's kaiming-uniform). */
  bScale?: number;
}

/** Writes a PEFT adapter for the model in `modelDir` and returns its folder. */
export function randomAdapter(modelDir: string, spec: AdapterSpec): string {
  const model = openModelDir(modelDir);
  const cfg = makeLoraConfig({
    r: spec.r,
    lora_alpha: spec.alpha,
    target_modules: spec.targets,
    use_rslora: spec.rslora ?? false,
    rank_pattern: spec.rankPattern ?? {},
    alpha_pattern: spec.alphaPattern ?? {},
  });
  const selected = selectTargets(cfg, listModules(model.config), { modelType: model.config.modelType });
  model.weights.close();
  const { adapter } = createAdapter(cfg, selected, { seed: spec.seed });
  const scale = spec.bScale ?? 0.05;
  for (const [name, t] of adapter.tensors) {
    if (name.includes("lora_B") || name.includes("lora_embedding_A")) {
      for (let i = 0; i < t.data.length; i++) t.data[i] = scale * Math.sin(1.7 * i + spec.seed);
    }
  }
  const dir = join(tempDir("lora-ts-interop-adapter-"), "adapter");
  saveAdapter(dir, adapter);
  return dir;
}
