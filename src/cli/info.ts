/** `lora-ts info --model DIR [--json]`: what a model is, without building any graph. */

import type { Command } from "commander";
import { parseLoraConfig, parseLoraSpec } from "../lora/config.js";
import { countParams, selectTargets } from "../lora/targets.js";
import { hfArchitecture } from "../models/family.js";
import { resolveModelPath } from "../models/model-path.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { LoraTsError } from "../util/errors.js";
import { readJsonFile } from "../util/files.js";

export interface ModelSummary {
  architecture: string;
  model_type: string;
  parameters: number;
  dtype: string;
  layers: number;
  hidden_size: number;
  heads: number;
  kv_heads: number;
  intermediate_size: number;
  vocab_size: number;
  tied_embeddings: boolean;
}

export function modelSummary(dir: string): ModelSummary {
  const m = openModelDir(dir);
  const c = m.config;
  const names = m.weights.names();
  const parameters = m.weights.parameterCount();
  const dtypes = [...new Set(names.map((n) => m.weights.info(n).dtype))];
  m.weights.close();
  return {
    architecture: hfArchitecture(c),
    model_type: c.modelType,
    parameters,
    dtype: dtypes.join("+"),
    layers: c.layers,
    hidden_size: c.hidden,
    heads: c.heads,
    kv_heads: c.kvHeads,
    intermediate_size: c.intermediate,
    vocab_size: c.vocabSize,
    tied_embeddings: c.tieWordEmbeddings,
  };
}

function printLoraAccounting(
  dir: string,
  baseParams: number,
  f: { json?: boolean; lora?: string; loraConfig?: string },
): void {
  if (f.lora !== undefined && f.loraConfig !== undefined)
    throw new LoraTsError("info: give --lora or --lora-config, not both");
  const model = openModelDir(dir);
  const cfg =
    f.loraConfig !== undefined
      ? parseLoraConfig(readJsonFile(f.loraConfig), f.loraConfig)
      : parseLoraSpec(f.lora!);
  const selected = selectTargets(cfg, listModules(model.config), { modelType: model.config.modelType });
  model.weights.close();
  const count = countParams(selected, baseParams, 0, cfg.use_dora);
  if (f.json) {
    process.stdout.write(`${JSON.stringify(count)}\n`);
    return;
  }
  const n = (x: number) => x.toLocaleString("en-US");
  process.stdout.write(
    `trainable ${n(count.trainable_params)} of ${n(count.total_params)} parameters (${count.trainable_percent.toFixed(2)}%)\n\n`,
  );
  const width = Math.max(6, ...count.modules.map((m) => m.name.length));
  process.stdout.write(
    `${"module".padEnd(width)}  ${"shape".padStart(12)}  ${"r".padStart(3)}  ${(cfg.use_dora ? "r·(in+out)+out" : "r·(in+out)").padStart(10)}\n`,
  );
  for (const m of count.modules) {
    const shape = `${m.out}×${m.in}`;
    process.stdout.write(
      `${m.name.padEnd(width)}  ${shape.padStart(12)}  ${String(m.r).padStart(3)}  ${n(m.params).padStart(10)}\n`,
    );
  }
}

export function registerInfo(program: Command): void {
  program
    .command("info")
    .description("architecture, parameter count, dtype, layers, hidden size, heads and vocabulary of a model")
    .requiredOption("--model <dir>", "Hugging Face model directory, .gguf file or hub id org/name[@revision]")
    .option("--lora <spec>", "LoRA accounting, e.g. r=8,alpha=16,target=q_proj,v_proj")
    .option("--lora-config <file>", "LoRA accounting from an adapter_config.json")
    .option("--json", "print JSON")
    .action(async (f: { model: string; json?: boolean; lora?: string; loraConfig?: string }) => {
      const dir = await resolveModelPath(f.model);
      const s = modelSummary(dir);
      if (f.lora !== undefined || f.loraConfig !== undefined) {
        printLoraAccounting(dir, s.parameters, f);
        return;
      }
      if (f.json) {
        process.stdout.write(`${JSON.stringify(s)}\n`);
        return;
      }
      const rows: [string, string][] = [
        ["architecture", `${s.architecture} (${s.model_type})`],
        ["parameters", s.parameters.toLocaleString("en-US")],
        ["dtype", s.dtype],
        ["layers", String(s.layers)],
        ["hidden size", String(s.hidden_size)],
        ["heads", s.kv_heads === s.heads ? String(s.heads) : `${s.heads} (${s.kv_heads} key/value)`],
        ["intermediate", String(s.intermediate_size)],
        ["vocab", String(s.vocab_size)],
        ["tied embeddings", s.tied_embeddings ? "yes" : "no"],
      ];
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(16)} ${v}\n`);
    });
}
