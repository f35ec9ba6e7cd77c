/**
 * Byte-level BPE tokenizers of the real families in an exported GGUF (#13): llama.cpp picks its
 * pre-tokenizer by tokenizer.ggml.pre, so each family's tokenizer.json shape (pre-tokenizer with the
 * family's exact regex, added tokens, post-processor) is built here around a BPE vocabulary trained by
 * lora-ts, attached to a tiny random model, exported with `lora-ts export gguf`, and llama.cpp's own
 * tokenizer must give lora-ts's ids on text chosen where the families differ: contractions, digit
 * runs (Llama-3 groups by 3, Qwen2 and SmolLM split each digit), letters of many scripts, CJK, emoji,
 * whitespace runs, newlines, and special tokens inside the text.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { trainBpe } from "../../src/data/bpe-train.js";
import { type JsonObject, Tokenizer } from "../../src/data/tokenizer.js";
import { GgufFile } from "../../src/io/gguf.js";
import { gpt2TokenizerJson } from "../../src/io/tokenizer-json.js";
import { parseModelConfig } from "../../src/models/family.js";
import { LLAMA3_SPLIT_REGEX, QWEN2_SPLIT_REGEX } from "../../src/models/gguf-tokenizer.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { runCli } from "../helpers/cli.js";
import { llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";
import { LLAMA_CPP, llamaTokenize } from "./llama-cpp.js";

const byteLevel = (useRegex: boolean, trim = true) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: trim,
  use_regex: useRegex,
});
const split = (regex: string) => ({
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
    byteLevel(false),
  ],
});

interface Family {
  pre: string;
  specials: string[];
  /** An added token that is not special: llama.cpp's user-defined type (4). */
  userDefined: string;
  shape(tj: JsonObject): void;
  config: JsonObject;
  addBos: boolean;
}

const FAMILIES: Record<string, Family> = {
  "GPT-2": {
    pre: "gpt-2",
    specials: ["<|endoftext|>"],
    userDefined: "<|user_tag|>",
    shape: () => {},
    config: { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" },
    addBos: false,
  },
  "Llama-3": {
    pre: "llama-bpe",
    specials: [
      "<|begin_of_text|>",
      "<|end_of_text|>",
      "<|start_header_id|>",
      "<|end_header_id|>",
      "<|eot_id|>",
    ],
    userDefined: "<|user_tag|>",
    shape: (tj) => {
      tj["pre_tokenizer"] = split(LLAMA3_SPLIT_REGEX);
      (tj["model"] as JsonObject)["ignore_merges"] = true;
      tj["post_processor"] = {
        type: "Sequence",
        processors: [
          byteLevel(true, false),
          {
            type: "TemplateProcessing",
            single: [
              { SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
              { Sequence: { id: "A", type_id: 0 } },
            ],
            pair: [],
            special_tokens: {},
          },
        ],
      };
    },
    config: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
    addBos: true,
  },
  Qwen2: {
    pre: "qwen2",
    specials: ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    userDefined: "<|user_tag|>",
    shape: (tj) => {
      tj["pre_tokenizer"] = split(QWEN2_SPLIT_REGEX);
      tj["normalizer"] = { type: "NFC" };
      tj["post_processor"] = byteLevel(false, false);
    },
    config: { bos_token: null, eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
    addBos: false,
  },
  "SmolLM/StarCoder": {
    pre: "smollm",
    specials: ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    userDefined: "<|user_tag|>",
    shape: (tj) => {
      tj["pre_tokenizer"] = {
        type: "Sequence",
        pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel(true)],
      };
    },
    config: { bos_token: "<|im_start|>", eos_token: "<|im_end|>" },
    addBos: false,
  },
};

/** Text where the families' pre-tokenizers differ (and where llama.cpp's could differ from HF's). */
const TEXTS = [
  "Hello world, it's a test. They're here; we've done it, I'm sure you'll see he'd go.",
  "IT'S LOUD: THEY'RE, WE'VE, I'M, YOU'LL, HE'D, DON'T 'S 't",
  "1 12 123 1234 12345 123456 and 3.14159, 2024-01-31, x=42, 007, 1,000,000",
  "abc123def 4567890 v2.0.1 #99 $100.50",
  "naïve café Ünïcödé Ελληνικά русский язык العربية हिन्दी",
  "你好，世界！日本語のテキストです。한국어 문장입니다.",
  "emoji 🙂👍🏽 🎉🎉 ❤️ 👨‍👩‍👧 ok",
  "a  b   c\t\td \n\n  e\r\n f   ",
  "   leading spaces",
  "trailing spaces   ",
  "\n\n\nthree newlines\n \n",
  "!!! ??? ...\n\n--- ''' \"quoted\" (paren) [bracket] {brace}",
  "Once upon a time, there was a little girl named Lily. She loved to play outside.",
];

function withSpecials(f: Family): string[] {
  const [a, b = a] = f.specials.length > 1 ? f.specials.slice(-2) : [f.specials[0]!];
  return [
    `${a}user\nHi there 123${b}\n${a}assistant\n`,
    `${f.specials[0]}Once upon a time${f.userDefined} the end${f.specials.at(-1)}`,
    `text${f.userDefined}text ${a} ${b}  `,
  ];
}

/** A model folder with a tiny random Llama and `family`'s tokenizer.json around a trained vocabulary. */
function familyModel(f: Family): { dir: string; tok: Tokenizer } {
  const trained = trainBpe([...TEXTS, ...TEXTS.map((t) => t.toLowerCase())], {
    vocabSize: 700,
    specialTokens: [...f.specials, f.userDefined],
  });
  const tj = gpt2TokenizerJson(trained);
  const added = tj["added_tokens"] as JsonObject[];
  for (const a of added) if (a["content"] === f.userDefined) a["special"] = false;
  f.shape(tj);
  const tok = Tokenizer.fromJSON(tj, f.config);
  const cfg = llamaConfig({
    vocab_size: tok.vocabSize,
    hidden_size: 16,
    intermediate_size: 16,
    num_hidden_layers: 1,
  });
  const dir = writeModelDir(
    tempDir(),
    cfg,
    randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), 1),
  );
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tj));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(f.config));
  return { dir, tok };
}

function exportGguf(dir: string): { code: number | null; stderr: string; out: string } {
  const out = join(tempDir("lora-ts-interop-bpe-"), "model.gguf");
  const r = runCli(["export", "gguf", "--model", dir, "--out", out]);
  return { code: r.code, stderr: r.stderr, out };
}

for (const [name, f] of Object.entries(FAMILIES)) {
  test(`${name} byte-level BPE: exported GGUF has pre "${f.pre}" and llama.cpp tokenizes as lora-ts does`, {
    skip: LLAMA_CPP,
  }, async () => {
    const { dir, tok } = familyModel(f);
    const r = exportGguf(dir);
    assert.equal(r.code, 0, r.stderr);
    const g = GgufFile.open(r.out);
    assert.equal(g.string("tokenizer.ggml.model"), "gpt2");
    assert.equal(g.string("tokenizer.ggml.pre"), f.pre);
    assert.equal(g.bool("tokenizer.ggml.add_bos_token", !f.addBos), f.addBos);
    const types = g.get("tokenizer.ggml.token_type") as ArrayLike<number>;
    for (const s of f.specials) assert.equal(types[tok.tokenToId(s)!], 3, s);
    assert.equal(types[tok.tokenToId(f.userDefined)!], 4);
    const eos = tok.tokenToId(f.config["eos_token"] as string);
    assert.equal(g.number("tokenizer.ggml.eos_token_id"), eos);
    const texts = [...TEXTS, ...withSpecials(f)];
    const got = await llamaTokenize(r.out, texts, true);
    const bad = texts
      .map((text, i) => ({ text, llama: got[i], lora: tok.encode(text, { addBos: false }) }))
      .filter((x) => JSON.stringify(x.llama) !== JSON.stringify(x.lora));
    assert.deepEqual(bad, []);
  });
}

test("an unknown Split regex is refused in one line naming the tokenizer and the supported ones", () => {
  const f = FAMILIES["Llama-3"]!;
  const { dir } = familyModel({
    ...f,
    shape: (tj) => {
      f.shape(tj);
      tj["pre_tokenizer"] = split(LLAMA3_SPLIT_REGEX.replace("{1,3}", "{1,4}"));
    },
  });
  const r = exportGguf(dir);
  assert.equal(r.code, 1);
  const msg = r.stderr.trim();
  assert.equal(msg.split("\n").length, 1, msg);
  assert.match(
    msg,
    /tokenizer\.json: this pre-tokenizer is not one llama\.cpp implements; .*Llama-3 and Qwen2/,
  );
});

test("a Llama-3 regex without ignore_merges is refused (llama.cpp's llama-bpe always ignores merges)", () => {
  const f = FAMILIES["Llama-3"]!;
  const { dir } = familyModel({
    ...f,
    shape: (tj) => {
      f.shape(tj);
      (tj["model"] as JsonObject)["ignore_merges"] = false;
    },
  });
  const r = exportGguf(dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ignore_merges false with pre-tokenizer llama-bpe/);
});
