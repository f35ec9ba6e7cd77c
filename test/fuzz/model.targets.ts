/**
 * Fuzz targets for Hugging Face model folders (models/open-model.ts over io/hf-model.ts): config.json
 * (models/config.ts and the family parsers) and model.safetensors.index.json of a sharded checkpoint,
 * each structurally mutated (values anywhere replaced by huge, negative, fractional, wrong-typed or
 * odd-string ones; keys added and removed) or byte-mutated, then the folder opened with openModelDir
 * and every weight read.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { parseModelConfig } from "../../src/models/family.js";
import { gpt2TensorShapes } from "../../src/models/gpt2.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { openModelDir } from "../../src/models/open-model.js";
import { gpt2Config, llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";
import { type FuzzTarget, multiLineKnown } from "./harness.js";
import { InputFile } from "./input-file.js";
import { jsonDocuments } from "./mutate.js";

interface Seed {
  dir: string;
  config: Record<string, unknown>;
  index: unknown;
  configFile: InputFile;
  indexFile: InputFile;
}

/** A tiny model folder whose config.json and index are rewritten per input. */
function seed(kind: "llama" | "gpt2", shards: number): Seed {
  const config =
    kind === "llama"
      ? llamaConfig({
          vocab_size: 16,
          hidden_size: 8,
          intermediate_size: 12,
          num_hidden_layers: 1,
          num_attention_heads: 2,
          num_key_value_heads: 1,
        })
      : gpt2Config({ vocab_size: 16, n_embd: 6, n_layer: 1, n_head: 2, n_positions: 8 });
  const parsed = parseModelConfig(config, "config.json");
  const shapes = kind === "llama" ? llamaTensorShapes(parsed) : gpt2TensorShapes(parsed);
  if (kind === "gpt2") shapes.delete("lm_head.weight");
  const dir = writeModelDir(tempDir("lora-ts-fuzz-model-"), config, randomWeights(shapes, 1), { shards });
  const index = {
    metadata: { total_size: 0 },
    weight_map: Object.fromEntries(
      [...shapes.keys()].map((n, i) => [n, `model-0000${(i % shards) + 1}-of-0000${shards}.safetensors`]),
    ),
  };
  writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1 }));
  return {
    dir,
    config,
    index,
    configFile: new InputFile(join(dir, "config.json")),
    indexFile: new InputFile(join(dir, "model.safetensors.index.json")),
  };
}

const SEEDS = [seed("llama", 2), seed("gpt2", 2)];

/** Opens the folder and reads every weight, as `lora-ts info` and model loading do. */
function openAndRead(s: Seed): void {
  const m = openModelDir(s.dir);
  try {
    m.weights.parameterCount();
    for (const name of m.weights.names()) m.weights.readFloat32(name);
  } finally {
    m.weights.close();
  }
}

interface ModelInput {
  seed: number;
  config?: string;
  index?: string;
}

function run({ seed, config, index }: ModelInput): void {
  const s = SEEDS[seed]!;
  s.configFile.write(config ?? JSON.stringify(s.config));
  s.indexFile.write(index ?? JSON.stringify(s.index));
  openAndRead(s);
}

const size = (i: ModelInput) => (i.config?.length ?? 0) + (i.index?.length ?? 0);

export const modelConfig: FuzzTarget<ModelInput> = {
  name: "model folder: config.json",
  covers:
    "openModelDir (parseModelConfig, the llama/gpt2 config readers, rope_scaling, the tensor checks) + reading every weight; config.json mutated",
  arbitrary: fc.oneof(
    ...SEEDS.map((s, i) => fc.record({ seed: fc.constant(i), config: jsonDocuments([s.config]) })),
  ),
  run,
  size,
  known: [
    multiLineKnown("src/models/family.ts quotes an unsupported model_type raw", /: unsupported model_type "/),
  ],
  explicit: [
    ...[2 ** 31 - 1, 2 ** 53 - 1].map((n) => ({
      name: `num_hidden_layers ${n}`,
      input: { seed: 0, config: JSON.stringify({ ...SEEDS[0]!.config, num_hidden_layers: n }) },
    })),
    {
      name: "n_layer 2^40",
      input: { seed: 1, config: JSON.stringify({ ...SEEDS[1]!.config, n_layer: 2 ** 40 }) },
    },
    {
      name: "hidden_size 2^40",
      input: { seed: 0, config: JSON.stringify({ ...SEEDS[0]!.config, hidden_size: 2 ** 40 }) },
    },
    {
      name: "vocab_size 2^60",
      input: { seed: 0, config: JSON.stringify({ ...SEEDS[0]!.config, vocab_size: 2 ** 60 }) },
    },
  ],
};

export const modelIndex: FuzzTarget<ModelInput> = {
  name: "model folder: model.safetensors.index.json",
  covers:
    "openModelDir over a two-shard checkpoint (openWeights, shard names, renames) + reading every weight; the index mutated",
  arbitrary: fc.oneof(
    ...SEEDS.map((s, i) => fc.record({ seed: fc.constant(i), index: jsonDocuments([s.index]) })),
  ),
  run,
  size,
  explicit: ["", ".", "..", "/", "config.json", "model.safetensors.index.json"].map((shard) => ({
    name: `a shard named ${JSON.stringify(shard)}`,
    input: { seed: 0, index: JSON.stringify({ weight_map: { "model.embed_tokens.weight": shard } }) },
  })),
};

export const targets = [modelConfig, modelIndex];
