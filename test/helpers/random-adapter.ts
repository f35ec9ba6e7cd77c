/** PEFT adapter folders with random non-zero A and B, for tests that need adapters that differ. */
import { createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { trainedBiases } from "../../src/lora/bias.js";
import { type LoraConfig, makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { familyOf } from "../../src/models/family.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { Rng } from "../../src/util/rng.js";

/**
 * Writes an adapter for the model in `modelDir` to `out`: A and B drawn from N(0, scale²) with
 * `seed`, so it moves the logits (a fresh adapter's B = 0 would not); with use_dora, each magnitude
 * is its initial value times a random factor in [0.5, 1.5).
 */
export function writeRandomAdapter(
  modelDir: string,
  out: string,
  opts: { seed: number; scale?: number } & Partial<Omit<LoraConfig, "raw" | "peft_type">>,
): void {
  const { seed, scale = 0.05, ...fields } = opts;
  const model = openModelDir(modelDir);
  try {
    const config = makeLoraConfig(fields);
    const modules = listModules(model.config);
    const selected = selectTargets(config, modules, { modelType: model.config.modelType });
    // DoRA's initial magnitude is read from the base weights (a tied head's is the embedding table).
    const names = new Set(model.weights.names());
    const embedding = `${familyOf(model.config).embeddingPath}.weight`;
    const baseWeight = (path: string): Float32Array =>
      model.weights.readFloat32(names.has(`${path}.weight`) ? `${path}.weight` : embedding);
    const { adapter } = createAdapter(config, selected, { seed, baseWeight });
    // Trained biases (bias "all" / "lora_only") are saved beside A and B, as the trainer does.
    for (const b of trainedBiases(config, modules, selected))
      adapter.tensors.set(b.key, { shape: [b.size], data: new Float32Array(b.size), dtype: "float32" });
    const rng = new Rng(seed + 1);
    for (const [key, t] of adapter.tensors) {
      // A DoRA magnitude moves to 0.5–1.5 times its initial ‖W‖, so that m / n is far from 1.
      if (key.endsWith(".lora_magnitude_vector"))
        for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! * (0.5 + rng.float());
      else for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal(0, scale);
    }
    saveAdapter(out, adapter);
  } finally {
    model.weights.close();
  }
}
