/**
 * `lora-ts convert llama2c --model X.bin --tokenizer tok.bin --out DIR`
 * `lora-ts convert gguf --model X.gguf --out DIR`
 */
import type { Command } from "commander";
import { convertGguf } from "../models/convert-gguf.js";
import { convertLlama2c } from "../models/convert-llama2c.js";

export function registerConvert(program: Command): void {
  const convert = program
    .command("convert")
    .description("convert other model formats to a Hugging Face directory");
  convert
    .command("llama2c")
    .description("Karpathy's llama2.c checkpoint (.bin) and tokenizer (.bin) -> Hugging Face directory")
    .requiredOption("--model <file>", "llama2.c checkpoint, e.g. stories260K.bin")
    .requiredOption("--tokenizer <file>", "llama2.c tokenizer, e.g. tok512.bin")
    .requiredOption("--out <dir>", "output directory (must not exist, unless --force)")
    .option("--force", "replace an existing output directory")
    .action(async (o: { model: string; tokenizer: string; out: string; force?: boolean }) => {
      await convertLlama2c(o);
      process.stdout.write(`wrote ${o.out}\n`);
    });
  convert
    .command("gguf")
    .description("llama.cpp GGUF file of a Llama model (F32/F16/BF16 tensors) -> Hugging Face directory")
    .requiredOption("--model <file>", "GGUF file, e.g. stories260K.gguf")
    .requiredOption("--out <dir>", "output directory (must not exist, unless --force)")
    .option("--force", "replace an existing output directory")
    .action(async (o: { model: string; out: string; force?: boolean }) => {
      await convertGguf(o);
      process.stdout.write(`wrote ${o.out}\n`);
    });
}
