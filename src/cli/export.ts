/**
 * `lora-ts export gguf --model M [--adapter A] --out model.gguf [--dtype f32|f16|bf16|q8_0] [--force]`:
 * the model, with the adapter merged in, as one llama.cpp GGUF file.
 * `lora-ts export gguf-adapter --model M --adapter A --out adapter.gguf [--force]`: the adapter alone,
 * as a llama.cpp GGUF LoRA adapter for the base model that `export gguf --model M` writes.
 */
import { existsSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import type { Command } from "commander";
import type { GgufWriteType } from "../io/gguf-write.js";
import { exportGgufModel } from "../lora/export-gguf.js";
import { exportGgufAdapter } from "../lora/export-gguf-adapter.js";
import { ollamaModelfile } from "../models/export-gguf.js";
import { resolveModelPath } from "../models/model-path.js";
import { writeFileAtomic } from "../util/atomic.js";
import { preview } from "../util/describe.js";
import { LoraTsError } from "../util/errors.js";

const DTYPES: readonly GgufWriteType[] = ["f32", "f16", "bf16", "q8_0"];

function parseDtype(v: string | undefined): GgufWriteType {
  if (v === undefined) return "f32";
  if (!(DTYPES as readonly string[]).includes(v)) {
    throw new LoraTsError(`--dtype ${preview(v)}: use one of ${DTYPES.join(", ")}`);
  }
  return v as GgufWriteType;
}

function refuseNonGguf(out: string): void {
  if (!out.endsWith(".gguf")) throw new LoraTsError(`--out ${out}: the file name must end in .gguf`);
}

/** The Modelfile --ollama writes beside --out; refused up front when it exists, unless --force. */
function modelfilePath(out: string, ollama: boolean | undefined, force: boolean | undefined): string | null {
  if (!ollama) return null;
  const path = join(dirname(out), "Modelfile");
  if (existsSync(path) && !force)
    throw new LoraTsError(`--ollama: ${path} already exists (use --force to replace it)`);
  return path;
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
    .option("--ollama", "also write an Ollama Modelfile beside --out (FROM it, stop at the EOS token)")
    .action(
      async (o: {
        model: string;
        adapter?: string;
        out: string;
        dtype?: string;
        force?: boolean;
        ollama?: boolean;
      }) => {
        // Every flag is checked before any work.
        const dtype = parseDtype(o.dtype);
        refuseNonGguf(o.out);
        const modelfile = modelfilePath(o.out, o.ollama, o.force);
        const opts: Parameters<typeof exportGgufModel>[0] = { model: o.model, out: o.out, dtype };
        if (o.adapter !== undefined) opts.adapter = o.adapter;
        if (o.force) opts.force = true;
        await exportGgufModel(opts);
        process.stdout.write(`wrote ${o.out}\n`);
        if (modelfile) {
          writeFileAtomic(
            modelfile,
            ollamaModelfile(await resolveModelPath(o.model), `./${basename(o.out)}`),
          );
          process.stdout.write(`wrote ${modelfile}\n`);
        }
      },
    );
  exp
    .command("gguf-adapter")
    .description("a LoRA adapter -> a llama.cpp GGUF LoRA adapter (load it beside `export gguf` of the base)")
    .requiredOption("--model <dir>", "the adapter's base model folder, hub id or .gguf")
    .requiredOption("--adapter <dir>", "LoRA adapter folder")
    .requiredOption("--out <file>", "the .gguf file to write (must not exist, unless --force)")
    .option("--force", "replace an existing output file")
    .option(
      "--ollama <base.gguf>",
      "also write an Ollama Modelfile beside --out: FROM this base GGUF, ADAPTER --out",
    )
    .action(async (o: { model: string; adapter: string; out: string; force?: boolean; ollama?: string }) => {
      refuseNonGguf(o.out);
      const modelfile = modelfilePath(o.out, o.ollama !== undefined, o.force);
      const r = await exportGgufAdapter({
        model: o.model,
        adapter: o.adapter,
        out: o.out,
        force: o.force === true,
      });
      process.stdout.write(`wrote ${o.out} (${r.modules} modules)\n`);
      if (modelfile && o.ollama !== undefined) {
        // Ollama resolves FROM and ADAPTER against the Modelfile's folder; --ollama is relative to here.
        const rel = relative(dirname(resolve(o.out)), resolve(o.ollama));
        const from = rel.startsWith("..") || isAbsolute(rel) ? resolve(o.ollama) : `./${rel}`;
        const text = ollamaModelfile(await resolveModelPath(o.model), from, `./${basename(o.out)}`);
        writeFileAtomic(modelfile, text);
        process.stdout.write(`wrote ${modelfile}\n`);
      }
    });
}
