/**
 * A tiny trainable model folder: random weights (Llama or GPT-2 shapes) with the toy tokenizer of
 * test/data/toy-tokenizer.ts, and a small JSONL text data set made of that tokenizer's words.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseModelConfig } from "../../src/models/family.js";
import { gpt2TensorShapes } from "../../src/models/gpt2.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { toyTokenizer, WORDS } from "../data/toy-tokenizer.js";
import { gpt2Config, llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";

export function tinyModel(kind: "llama" | "gpt2", seed: number, over: Record<string, unknown> = {}): string {
  const tok = toyTokenizer();
  let dir: string;
  if (kind === "llama") {
    const cfg = llamaConfig({ vocab_size: tok.vocabSize, ...over });
    dir = writeModelDir(
      tempDir(),
      cfg,
      randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), seed),
    );
  } else {
    const cfg = gpt2Config({ vocab_size: tok.vocabSize, bos_token_id: 1, eos_token_id: 2, ...over });
    const shapes = gpt2TensorShapes(parseModelConfig(cfg, "config.json"));
    shapes.delete("lm_head.weight"); // tied
    dir = writeModelDir(tempDir(), cfg, randomWeights(shapes, seed));
  }
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tok.tokenizerConfig));
  return dir;
}

/** `rows` JSONL {"text"} rows of 6–10 of the toy tokenizer's words. */
export function wordData(rows: number): string {
  const lines = Array.from({ length: rows }, (_, i) => {
    const words = Array.from({ length: 6 + (i % 5) }, (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length]!);
    return JSON.stringify({ text: `Once upon a time ${words.join(" ")}. The end` });
  });
  const path = join(tempDir(), "data.jsonl");
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}
