/** `lora-ts info --model DIR [--json]`: what a model is, without building any graph. */
import type { Command } from "commander";
import { openModelDir } from "../io/hf-model.js";
import { resolveModelPath } from "../io/model-path.js";

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
  const parameters = names.reduce((n, name) => n + m.weights.info(name).shape.reduce((a, b) => a * b, 1), 0);
  const dtypes = [...new Set(names.map((n) => m.weights.info(n).dtype))];
  m.weights.close();
  return {
    architecture:
      c.family === "gpt2"
        ? "GPT2LMHeadModel"
        : `${c.modelType[0]!.toUpperCase()}${c.modelType.slice(1)}ForCausalLM`,
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

export function registerInfo(program: Command): void {
  program
    .command("info")
    .description("architecture, parameter count, dtype, layers, hidden size, heads and vocabulary of a model")
    .requiredOption("--model <dir>", "Hugging Face model directory or .gguf file")
    .option("--json", "print JSON")
    .action(async (f: { model: string; json?: boolean }) => {
      const s = modelSummary(await resolveModelPath(f.model));
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
