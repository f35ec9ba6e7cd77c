/**
 * `lora-ts convert llama2c`: Karpathy's llama2.c checkpoint + tokenizer.bin -> a Hugging Face model
 * directory (config.json, model.safetensors with q/k rows in HF's rotate-half layout, tokenizer.json,
 * tokenizer_config.json, generation_config.json).
 */
import { join } from "node:path";
import { llama2cHfConfig, readLlama2cCheckpoint, readLlama2cTokenizer } from "../io/llama2c.js";
import { writeSafetensors } from "../io/safetensors.js";
import { llama2cTokenizerJson, tokenizerConfigJson } from "../io/tokenizer-json.js";
import { writeDirAtomic, writeJsonAtomic } from "../util/atomic.js";
import { refuseBadOut } from "../util/out-dir.js";

export interface ConvertLlama2cOptions {
  model: string;
  tokenizer: string;
  out: string;
  /** Replace an existing output directory. */
  force?: boolean;
}

export async function convertLlama2c(opts: ConvertLlama2cOptions): Promise<void> {
  // The converted files are only read: with --force, replacing a folder holding one would delete it.
  refuseBadOut(opts.out, [
    { path: opts.model, what: "the input file" },
    { path: opts.tokenizer, what: "the input file" },
  ]);
  const ckpt = readLlama2cCheckpoint(opts.model);
  const vocab = readLlama2cTokenizer(opts.tokenizer, ckpt.config.vocabSize);
  await writeDirAtomic(
    opts.out,
    (dir) => {
      writeJsonAtomic(join(dir, "config.json"), llama2cHfConfig(ckpt.config));
      const tensors = [...ckpt.tensors].map(([name, t]) => ({ name, dtype: "float32" as const, ...t }));
      writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
      writeJsonAtomic(join(dir, "tokenizer.json"), llama2cTokenizerJson(vocab, { addBos: true }));
      writeJsonAtomic(
        join(dir, "tokenizer_config.json"),
        tokenizerConfigJson({
          bosToken: "<s>",
          eosToken: "</s>",
          unkToken: "<unk>",
          addBosToken: true,
          tokenizerClass: "LlamaTokenizerFast",
          modelMaxLength: ckpt.config.seqLen,
        }),
      );
      writeJsonAtomic(join(dir, "generation_config.json"), { bos_token_id: 1, eos_token_id: 2 });
    },
    { replace: opts.force },
  );
}
