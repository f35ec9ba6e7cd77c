/**
 * Fresh random weights for a model config, as Hugging Face initialises a new model: matrices and
 * embedding tables ~ N(0, 0.02²), norm scales 1, biases 0. Used to train a base model from scratch
 * (`train --mode full`) and by benchmarks that need a checkpoint of a given shape.
 */
import { join } from "node:path";
import type { DType } from "../graph/dtype.js";
import { f32ToBf16 } from "../graph/half.js";
import { writeSafetensors } from "../io/safetensors.js";
import { writeJsonAtomic } from "../util/atomic.js";
import { Rng } from "../util/rng.js";
import { expectedTensors, parseModelConfig } from "./family.js";

export function randomWeights(
  configJson: Record<string, unknown>,
  seed: number,
  std = 0.02,
): Map<string, Float32Array> {
  const cfg = parseModelConfig(configJson, "config.json");
  const shapes = expectedTensors(cfg);
  if (cfg.tieWordEmbeddings) shapes.delete("lm_head.weight");
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const rng = Rng.derive(seed, name); // per tensor, so adding a tensor does not shift the others
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith(".bias")) data.fill(0);
    else if (shape.length === 1) data.fill(1);
    else rng.fillNormal(data, 0, std);
    out.set(name, data);
  }
  return out;
}

/** Writes config.json and a random model.safetensors into an existing folder. */
export function writeRandomModel(
  dir: string,
  configJson: Record<string, unknown>,
  opts: { seed?: number; dtype?: Extract<DType, "float32" | "bfloat16"> } = {},
): void {
  const cfg = parseModelConfig(configJson, "config.json");
  const shapes = expectedTensors(cfg);
  const tensors = [...randomWeights(configJson, opts.seed ?? 0)].map(([name, data]) => {
    const shape = shapes.get(name)!;
    return opts.dtype === "bfloat16"
      ? { name, dtype: "bfloat16" as const, shape, data: f32ToBf16(data) }
      : { name, dtype: "float32" as const, shape, data };
  });
  writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  writeJsonAtomic(join(dir, "config.json"), configJson);
}
