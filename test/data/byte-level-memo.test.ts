/**
 * The ByteLevel word cache (src/data/byte-level-memo.ts) gives the library's own ids: random text
 * through lora-ts's Tokenizer against an untouched @huggingface/tokenizers Tokenizer, for the default
 * model's tokenizer (GPT-2's regex split), a Llama 3 / Qwen style Sequence (a Split, then ByteLevel
 * without its regex) and add_prefix_space, and a second pass that reads from the cache.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import fc from "fast-check";
import { memoizeByteLevel } from "../../src/data/byte-level-memo.js";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";

const json = JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, "tokenizer.json"), "utf8"));
const config = JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, "tokenizer_config.json"), "utf8"));

// Llama 3's split pattern, then ByteLevel with use_regex false, as Llama 3 and Qwen2 tokenizer.json have.
const SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const variants: Record<string, object> = {
  "GPT-2 regex (the default model)": json,
  "Split + ByteLevel without regex": {
    ...json,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: SPLIT }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
  },
  add_prefix_space: { ...json, pre_tokenizer: { ...json.pre_tokenizer, add_prefix_space: true } },
};

// Letters, digits, apostrophes, runs of spaces and newlines, punctuation, accents, CJK, emoji.
const piece = fc.constantFrom(
  "the",
  " cat",
  "'s",
  "'re",
  "don't",
  " ",
  "  ",
  "\n",
  "\n\n",
  "\t",
  "\r\n",
  "123",
  "4567",
  ",",
  ".",
  "!?",
  "###",
  "café",
  "naïve",
  "日本語",
  "😀",
  "👍🏽",
  "Ω",
  "-",
  "_x_",
  "A",
  "ß",
  "\u00a0",
  "<s>",
);
const text = fc.array(piece, { maxLength: 40 }).map((p) => p.join(""));

for (const [name, tj] of Object.entries(variants)) {
  test(`ByteLevel word cache: the library's ids, ${name}`, () => {
    const plain = new HfTokenizer(tj, config);
    const ours = Tokenizer.fromJSON(tj as Record<string, unknown>, config);
    // The cache is really in place (a library whose ByteLevel changed shape would leave it out).
    assert.equal(memoizeByteLevel(new HfTokenizer(tj, config)), 1);
    fc.assert(
      fc.property(text, (s) => {
        const want = plain.encode(s, { add_special_tokens: false }).ids;
        assert.deepEqual(ours.encode(s, { addBos: false }), want);
        assert.deepEqual(ours.encode(s, { addBos: false }), want, "again, from the cache");
      }),
      { numRuns: 300, seed: 18 },
    );
  });
}
