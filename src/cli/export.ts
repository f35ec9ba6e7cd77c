/**
 * `lora-ts export gguf --model M [--adapter A] --out model.gguf [--dtype f32|f16|bf16|q8_0] [--force]`:
 * the model, with the adapter merged in, as one llama.cpp GGUF file.
 * `lora-ts export gguf-adapter --model M --adapter A --out adapter.gguf [--force]`: the adapter alone,
 * as a llama.cpp GGUF LoRA adapter for the base model that `export gguf --model M` writes.
 */
import type { Command } from "commander";
import type { GgufWriteType } from "../io/gguf-write.js";
import { exportGgufModel } from "../lora/export-gguf.js";
import { exportGgufAdapter } from "../lora/export-gguf-adapter.js";
import { LoraTsError } from "../util/errors.js";

const DTYPES: readonly GgufWriteType[] = ["f32", "f16", "bf16", "q8_0"];

function parseDtype(v: string | undefined): GgufWriteType {
  if (v === undefined) return "f32";
  if (!(DTYPES as readonly string[]).includes(v)) {
    throw new LoraTsError(`--dtype ${v}: use one of ${DTYPES.join(", ")}`);
  }
  return v as GgufWriteType;
}

function refuseNonGguf(out: string): void {
  if (!out.endsWith(".gguf")) throw new LoraTsError(`--out ${out}: the file name must end in .gguf`);
}

export function registerExport(program: Command): void {
  const exp = program.command("export").description("export a model or an adapter to other tools' formats");
  exp
    .command("gguf")
    .description("a model (with an adapter merged in) -> one llama.cpp GGUF file (llama, qwen2, gpt2)")
    .requiredOption("--model <dir>", "base model folder, hub id or .gguf")
    .option("--adapter <dir>", "LoRA adapter folder to merge in first")
    .requiredOption("--out <file>", "the .gguf file to write (must not exist, unless --force)")
    .option("--dtype <type>", "matrix type: f32, f16, bf16 or q8_0 (norms and biases stay f32)", "f32")
    .option("--force", "replace an existing output file")
    .action(async (o: { model: string; adapter?: string; out: string; dtype?: string; force?: boolean }) => {
      // Every flag is checked before any work.
      const dtype = parseDtype(o.dtype);
      refuseNonGguf(o.out);
      const opts: Parameters<typeof exportGgufModel>[0] = { model: o.model, out: o.out, dtype };
      if (o.adapter !== undefined) opts.adapter = o.adapter;
      if (o.force) opts.force = true;
      await exportGgufModel(opts);
      process.stdout.write(`wrote ${o.out}\n`);
    });
  exp
    .command("gguf-adapter")
    .description("a LoRA adapter -> a llama.cpp GGUF LoRA adapter (load it beside `export gguf` of the base)")
    .requiredOption("--model <dir>", "the adapter's base model folder, hub id or .gguf")
    .requiredOption("--adapter <dir>", "LoRA adapter folder")
    .requiredOption("--out <file>", "the .gguf file to write (must not exist, unless --force)")
    .option("--force", "replace an existing output file")
    .action(async (o: { model: string; adapter: string; out: string; force?: boolean }) => {
      refuseNonGguf(o.out);
      const r = await exportGgufAdapter(o.force ? { ...o, force: true } : o);
      process.stdout.write(`wrote ${o.out} (${r.modules} modules)\n`);
    });
}
