/**
 * Repositories for the mock hub (mock-hub.ts): a tiny Llama stored as two bf16 safetensors shards
 * with an index, a tokenizer and a generation config (plus files lora-ts must not fetch: a .bin
 * pickle, a README, a subfolder), and a PEFT adapter for it.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import type { ModuleInfo } from "../../src/lora/targets.js";
import { selectTargets } from "../../src/lora/targets.js";
import { parseModelConfig } from "../../src/models/family.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { toyTokenizer } from "../data/toy-tokenizer.js";
import { llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";
import type { MockFile } from "./mock-hub.js";

/** A tiny Llama folder: 2 bf16 shards + model.safetensors.index.json, tokenizer, generation config. */
export function tinyShardedLlama(seed = 3): string {
  const tok = toyTokenizer();
  const cfg = llamaConfig({ vocab_size: tok.vocabSize, torch_dtype: "bfloat16" });
  const dir = writeModelDir(
    tempDir(),
    cfg,
    randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), seed),
    {
      dtype: "bfloat16",
      shards: 2,
    },
  );
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tok.tokenizerConfig));
  writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
  return dir;
}

/** A PEFT adapter (q_proj, v_proj, r 2) for tinyShardedLlama, with non-zero B so that it changes the output. */
export function tinyAdapter(seed = 5): string {
  const cfg = makeLoraConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj"] });
  const modules: ModuleInfo[] = [];
  for (let i = 0; i < 2; i++) {
    for (const p of ["q_proj", "v_proj"]) {
      modules.push({
        path: `model.layers.${i}.self_attn.${p}`,
        kind: "linear",
        inFeatures: 32,
        outFeatures: 32,
      });
    }
  }
  const { adapter } = createAdapter(cfg, selectTargets(cfg, modules), { seed });
  for (const [name, t] of adapter.tensors) {
    if (name.includes("lora_B"))
      for (let i = 0; i < t.data.length; i++) t.data[i] = 0.05 * Math.sin(i + seed);
  }
  const dir = join(tempDir("lora-ts-adapter-"), "adapter");
  saveAdapter(dir, adapter);
  return dir;
}

/** Every file under `dir` as a MockFile, plus `extra` files. */
export function filesOf(dir: string, extra: MockFile[] = []): MockFile[] {
  const out: MockFile[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push({ path: relative(dir, p), data: new Uint8Array(readFileSync(p)) });
    }
  };
  walk(dir);
  return [...out, ...extra];
}

/** Files a model repository often carries that lora-ts must never download. */
export function decoys(): MockFile[] {
  return [
    { path: "pytorch_model.bin", data: new Uint8Array(4096).fill(7) },
    { path: "README.md", data: Buffer.from("# tiny\n") },
    { path: "original/consolidated.safetensors", data: new Uint8Array(64).fill(1) },
  ];
}
