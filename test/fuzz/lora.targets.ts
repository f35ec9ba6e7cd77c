/**
 * Fuzz targets for LoRA adapters and their settings (lora/config.ts, lora/adapter.ts,
 * lora/targets.ts): adapter_config.json mutated in a saved adapter folder that is then loaded and
 * checked against a tiny Llama's modules (loadAdapter + validateAdapter + selectTargets, and the
 * config's JSON round trip); the adapter's safetensors file byte-mutated in the same way; and the
 * CLI's --lora spec built from its keys and odd values, then resolved against the model as `lora-ts
 * info --lora` does.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { createAdapter } from "../../src/lora/adapter.js";
import { loadAdapter, saveAdapter } from "../../src/lora/adapter-files.js";
import { loraConfigToJson, makeLoraConfig, parseLoraConfig, parseLoraSpec } from "../../src/lora/config.js";
import { countParams, selectTargets } from "../../src/lora/targets.js";
import { parseModelConfig } from "../../src/models/family.js";
import { listModules } from "../../src/models/modules.js";
import { gpt2Config, llamaConfig, tempDir } from "../models/fixtures.js";
import type { FuzzTarget } from "./harness.js";
import { InputFile } from "./input-file.js";
import { jsonDocuments, mutatedBytes } from "./mutate.js";

const llama = parseModelConfig(
  llamaConfig({
    vocab_size: 16,
    hidden_size: 8,
    intermediate_size: 12,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
  }),
  "config.json",
);
const gpt2 = parseModelConfig(
  gpt2Config({ vocab_size: 16, n_embd: 6, n_layer: 1, n_head: 2 }),
  "config.json",
);
const MODELS = [
  { modules: listModules(llama), modelType: "llama" },
  { modules: listModules(gpt2), modelType: "gpt2" },
];
const llamaModules = MODELS[0]!.modules;

/** adapter_config.json objects as PEFT writes them, in the shapes this project accepts. */
const CONFIG_SEEDS: Record<string, unknown>[] = [
  {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: "tiny",
    r: 4,
    lora_alpha: 8,
    lora_dropout: 0.05,
    target_modules: ["q_proj", "v_proj"],
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: { q_proj: 2 },
    alpha_pattern: {},
    modules_to_save: null,
    inference_mode: true,
    use_dora: false,
  },
  {
    peft_type: "LORA",
    r: 2,
    lora_alpha: 4,
    target_modules: "model\\.layers\\.\\d+\\.self_attn\\.(q|k)_proj",
    use_rslora: true,
    init_lora_weights: "gaussian",
  },
  {
    r: 2,
    lora_alpha: 2,
    target_modules: ["o_proj", "down_proj", "embed_tokens"],
    layers_to_transform: [1],
    layers_pattern: "layers",
    bias: "lora_only",
    alpha_pattern: { "layers\\.1\\..*": 3 },
  },
  { target_modules: "all-linear", exclude_modules: ["k_proj"], r: 1, bias: "all", init_lora_weights: false },
];

const dir = tempDir("lora-ts-fuzz-lora-");

/** One saved adapter per seed config (its weights fit the tiny Llama), rewritten per input. */
const ADAPTERS = CONFIG_SEEDS.map((raw, i) => {
  const config = parseLoraConfig(raw);
  const selected = selectTargets(config, llamaModules, { modelType: "llama" });
  const { adapter } = createAdapter(config, selected, { seed: i });
  const at = join(dir, `adapter-${i}`);
  saveAdapter(at, adapter, { dtype: i % 2 === 0 ? "float32" : "bfloat16" });
  const configPath = join(at, "adapter_config.json");
  const weightsPath = join(at, "adapter_model.safetensors");
  const configText = readFileSync(configPath, "utf8");
  const weightBytes = new Uint8Array(readFileSync(weightsPath));
  // InputFile truncates: the originals are read first.
  return {
    dir: at,
    configText,
    weightBytes,
    config: new InputFile(configPath),
    weights: new InputFile(weightsPath),
  };
});

/** Loads the adapter against the tiny Llama; a config that parses must also survive its JSON round trip. */
function loadChecked(i: number, configText?: string, weights?: Uint8Array): void {
  const a = ADAPTERS[i]!;
  a.config.write(configText ?? a.configText);
  a.weights.write(weights ?? a.weightBytes);
  try {
    const adapter = loadAdapter(a.dir, llamaModules, { modelType: "llama" });
    roundTrip(adapter.config);
  } finally {
    // Restore the seed so the next input starts from a valid folder.
    a.config.write(a.configText);
    a.weights.write(a.weightBytes);
  }
}

function roundTrip(config: ReturnType<typeof parseLoraConfig>): void {
  try {
    parseLoraConfig(loraConfigToJson(config));
  } catch (e) {
    // Not a user error: what we write must read back.
    throw new Error(`adapter_config.json round trip failed: ${(e as Error).message}`);
  }
}

interface AdapterInput {
  adapter: number;
  config?: string;
  weights?: Uint8Array;
}

const adapterIndex = fc.nat(ADAPTERS.length - 1);

export const adapterConfig: FuzzTarget<AdapterInput> = {
  name: "adapter: adapter_config.json",
  covers:
    "loadAdapter + validateAdapter + selectTargets on a tiny Llama (regex and list targets, layers, patterns, bias) and the config's JSON round trip; adapter_config.json mutated",
  arbitrary: fc.oneof(
    ...ADAPTERS.map((_, i) =>
      fc.record({ adapter: fc.constant(i), config: jsonDocuments([CONFIG_SEEDS[i]!]) }),
    ),
  ),
  run: ({ adapter, config }) => loadChecked(adapter, config),
  size: (i) => i.config?.length ?? 0,
  explicit: [
    { name: "r 2^60", input: { adapter: 0, config: JSON.stringify({ ...CONFIG_SEEDS[0], r: 2 ** 60 }) } },
    ...["(.*)*x", "(\\w+\\.?)+$x", "(q|.)*z"].map((target_modules) => ({
      name: `backtracking regex ${target_modules}`,
      input: { adapter: 1, config: JSON.stringify({ ...CONFIG_SEEDS[1], target_modules }) },
    })),
    {
      name: "rank_pattern rank 2^31",
      input: {
        adapter: 0,
        config: JSON.stringify({ ...CONFIG_SEEDS[0], rank_pattern: { q_proj: 2 ** 31 } }),
      },
    },
  ],
};

export const adapterWeights: FuzzTarget<AdapterInput & { weights: Uint8Array }> = {
  name: "adapter: adapter_model.safetensors",
  covers: "the same loading with the adapter's safetensors file (float32 and bfloat16) byte-mutated",
  arbitrary: adapterIndex.chain((adapter) =>
    fc.record({ adapter: fc.constant(adapter), weights: mutatedBytes([ADAPTERS[adapter]!.weightBytes]) }),
  ),
  run: ({ adapter, weights }) => loadChecked(adapter, undefined, weights),
  size: (i) => i.weights.length,
};

const specKey = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom("r", "alpha", "dropout", "target", "rslora", "init", "bias", "layers"),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(fc.constantFrom("", " r ", "R", "lora_alpha"), fc.string({ maxLength: 5 })),
  },
);
const specValue = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      "0",
      "1",
      "8",
      "-1",
      "0.5",
      "1e309",
      "2e9",
      "NaN",
      "0x10",
      "true",
      "false",
      "gaussian",
      "pissa",
      "pissa_niter_4",
      "olora",
      "all-linear",
      "q_proj",
      "v_proj",
      "c_attn",
      "embed_tokens",
      "lm_head",
      "none",
      "all",
      "lora_only",
      ".*",
      "(",
      "q_proj|v_proj",
      "a\nb",
      "",
      " ",
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);
const specItem = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(specKey, specValue).map(([k, v]) => `${k}=${v}`) },
  { weight: 2, arbitrary: specValue },
  { weight: 1, arbitrary: fc.constantFrom("=", "==", "r==8", ",") },
);

export const loraSpec: FuzzTarget<{ spec: string; model: number }> = {
  name: "--lora spec",
  covers:
    "parseLoraSpec, then selectTargets + countParams on a tiny Llama or GPT-2 as `lora-ts info --lora` does; specs built from keys, values and separators",
  arbitrary: fc.record({
    spec: fc.oneof(
      { weight: 6, arbitrary: fc.array(specItem, { maxLength: 6 }).map((items) => items.join(",")) },
      { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
    ),
    model: fc.nat(MODELS.length - 1),
  }),
  run: ({ spec, model }) => {
    const m = MODELS[model]!;
    const cfg = parseLoraSpec(spec);
    roundTrip(cfg);
    countParams(selectTargets(cfg, m.modules, { modelType: m.modelType }), 1000);
  },
  size: (i) => i.spec.length,
};

/** makeLoraConfig is the library's way in (train's options): same checks, any field values. */
export const loraFields: FuzzTarget<Record<string, unknown>> = {
  name: "adapter: LoraConfig fields from code",
  covers: "makeLoraConfig (the trainer's options) with arbitrary field values, then selectTargets",
  arbitrary: fc.record(
    {
      r: fc.oneof(fc.integer(), fc.double()),
      lora_alpha: fc.oneof(fc.integer(), fc.double()),
      lora_dropout: fc.double(),
      target_modules: fc.oneof(
        fc.constant(null),
        fc.constantFrom("all-linear", ".*proj", "("),
        fc.array(fc.constantFrom("q_proj", "x", "", "lm_head")),
      ),
      bias: fc.constantFrom("none", "all", "lora_only", "some"),
      init_lora_weights: fc.constantFrom(true, false, "gaussian", "pissa", "pissa_niter_2", "loftq"),
      layers_to_transform: fc.oneof(
        fc.constant(null),
        fc.integer({ min: -1, max: 3 }),
        fc.array(fc.integer({ min: -1, max: 3 })),
      ),
    },
    { requiredKeys: [] },
  ),
  run: (fields) => {
    const cfg = makeLoraConfig(fields as Parameters<typeof makeLoraConfig>[0]);
    selectTargets(cfg, llamaModules, { modelType: "llama" });
  },
  size: (f) => JSON.stringify(f).length,
};

export const targets = [adapterConfig, adapterWeights, loraSpec, loraFields];
