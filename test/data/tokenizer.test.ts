import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { readTokenizer } from "../../src/data/tokenizer-files.js";
import { GgufFile } from "../../src/io/gguf.js";
import { type Llama2cVocab, readLlama2cTokenizer } from "../../src/io/llama2c.js";
import {
  gpt2TokenizerJson,
  llama2cTokenizerJson,
  MAX_MERGED_PIECE,
  spmMerges,
  spmTokenizerJson,
  tokenizerConfigJson,
  tokenizerFromGguf,
} from "../../src/io/tokenizer-json.js";
import { FileFormatError, LoraTsError } from "../../src/util/errors.js";
import { needsShared, sharedPath } from "../helpers/shared.js";

// Every test that reads ../shared names each file it reads in its skip option (needsShared), so a
// missing file is a skip that names it, never an ENOENT failure or a partial pass.
const LLAMA_SPM = "tokenizer-vectors/ggml-vocab-llama-spm.gguf";
const GPT2 = "tokenizer-vectors/ggml-vocab-gpt-2.gguf";
/** The .gguf vocab and the .inp / .out vectors that runVectors reads beside it. */
const vectorFiles = (gguf: string) => [gguf, `${gguf}.inp`, `${gguf}.out`];
const TOK512 = "models/stories260K/tok512.bin";
const REFERENCE = "models/stories260K/reference.json";
const SHAKESPEARE = "data/tinyshakespeare.txt";

const tmp = mkdtempSync(path.join(tmpdir(), "lora-ts-tok-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---- llama.cpp test vectors ---------------------------------------------------------------------

/**
 * Reads <vocab>.inp / <vocab>.out as llama.cpp's tests/test-tokenizer-0.cpp does: the .inp text is
 * split on "\n__ggml_vocab_test__\n" (the file ends with that separator, so nothing follows the last
 * test), the .out file is read line by line and each line is trimmed and split on spaces.
 */
function readVectors(vocab: string): { text: string; ids: number[] }[] {
  const inp = readFileSync(`${vocab}.inp`, "utf8");
  const sep = "\n__ggml_vocab_test__\n";
  const texts: string[] = [];
  let pos = 0;
  while (pos < inp.length) {
    const next = inp.indexOf(sep, pos);
    if (next === -1) {
      texts.push(inp.slice(pos));
      break;
    }
    texts.push(inp.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = readFileSync(`${vocab}.out`, "utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  assert.equal(texts.length, lines.length, "as many .inp tests as .out lines");
  return texts.map((text, i) => {
    const o = lines[i]!.trim();
    return { text, ids: o === "" ? [] : o.split(" ").map(Number) };
  });
}

/**
 * llama.cpp's test compares token ids only (tokenize with add_special=false, parse_special=false);
 * the detokenized text is printed, not compared. We compare ids exactly, and additionally require
 * decode(expected ids) === input text exactly: the SPM decoder strips the one leading space that the
 * dummy prefix added (HF's Strip(" ", 1, 0)), so inputs that themselves start with spaces keep them.
 */
function runVectors(file: string): { n: number; encoded: number; decoded: number; failures: string[] } {
  const { tokenizer, config } = tokenizerFromGguf(GgufFile.open(file));
  const tok = Tokenizer.fromJSON(tokenizer, config);
  const vectors = readVectors(file);
  let encoded = 0;
  let decoded = 0;
  const failures: string[] = [];
  for (const { text, ids } of vectors) {
    const got = tok.encode(text, { addBos: false });
    if (JSON.stringify(got) === JSON.stringify(ids)) encoded++;
    else failures.push(`encode ${JSON.stringify(text)}: expected [${ids}] got [${got}]`);
    const back = tok.decode(ids);
    if (back === text) decoded++;
    else failures.push(`decode [${ids}]: expected ${JSON.stringify(text)} got ${JSON.stringify(back)}`);
  }
  return { n: vectors.length, encoded, decoded, failures };
}

test("llama.cpp vectors: ggml-vocab-llama-spm.gguf (Llama SentencePiece BPE)", {
  skip: needsShared(...vectorFiles(LLAMA_SPM)),
}, (t) => {
  const r = runVectors(sharedPath(LLAMA_SPM));
  t.diagnostic(`llama-spm: ${r.encoded}/${r.n} encode exactly, ${r.decoded}/${r.n} decode exactly`);
  assert.deepEqual(r.failures, []);
  assert.equal(r.n, 46); // the files hold 46 tests (46 separators, 46 .out lines)
});

test("llama.cpp vectors: ggml-vocab-gpt-2.gguf (GPT-2 byte-level BPE)", {
  skip: needsShared(...vectorFiles(GPT2)),
}, (t) => {
  const r = runVectors(sharedPath(GPT2));
  t.diagnostic(`gpt-2: ${r.encoded}/${r.n} encode exactly, ${r.decoded}/${r.n} decode exactly`);
  assert.deepEqual(r.failures, []);
  assert.equal(r.n, 46);
});

test("tokenizer built from a GGUF vocab: BOS/EOS, specials, vocab size", {
  skip: needsShared(LLAMA_SPM, GPT2),
}, () => {
  const { tokenizer, config } = tokenizerFromGguf(GgufFile.open(sharedPath(LLAMA_SPM)));
  const tok = Tokenizer.fromJSON(tokenizer, config);
  assert.equal(tok.vocabSize, 32000);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.deepEqual(tok.encode("Hello world"), [1, 15043, 3186]); // post-processor adds BOS
  assert.deepEqual(tok.encode("Hello world", { addBos: true }), [1, 15043, 3186]);
  assert.deepEqual(tok.encode("Hello world", { addBos: false }), [15043, 3186]);
  assert.equal(tok.decode([1, 15043, 3186, 2]), "<s> Hello world</s>");
  assert.equal(tok.decode([1, 15043, 3186, 2], { skipSpecial: true }), "Hello world");
  assert.equal(tok.decode([]), "");

  const g = tokenizerFromGguf(GgufFile.open(sharedPath(GPT2)));
  const gpt = Tokenizer.fromJSON(g.tokenizer, g.config);
  assert.equal(gpt.vocabSize, 50257);
  assert.equal(gpt.eosId, 50256);
  assert.deepEqual(gpt.encode("Hello world<|endoftext|>"), [15496, 995, 50256]);
  assert.equal(gpt.decode([15496, 995, 50256], { skipSpecial: true }), "Hello world");
});

// ---- llama2.c tokenizer ---------------------------------------------------------------------------

/** A direct port of llama2.c run.c's encode(t, text, bos=0, eos=0) (byte strings, linear merge scan). */
function runcEncode(v: Llama2cVocab, text: string): number[] {
  const key = (b: Uint8Array) => Buffer.from(b).toString("latin1");
  const strs = v.tokenBytes.map(key);
  const lookup = new Map<string, number>();
  strs.forEach((s, i) => {
    if (!lookup.has(s)) lookup.set(s, i);
  });
  const bytes = new TextEncoder().encode(text);
  const tokens: number[] = [];
  if (bytes.length > 0) tokens.push(lookup.get(" ")!); // dummy prefix
  for (let i = 0; i < bytes.length; ) {
    let j = i + 1;
    while (j < bytes.length && (bytes[j]! & 0xc0) === 0x80 && j - i < 4) j++;
    const id = lookup.get(key(bytes.subarray(i, j)));
    if (id !== undefined) tokens.push(id);
    else for (let k = i; k < j; k++) tokens.push(bytes[k]! + 3); // byte fallback
    i = j;
  }
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup.get(strs[tokens[i]!]! + strs[tokens[i + 1]!]!);
      if (id !== undefined && v.scores[id]! > bestScore) {
        bestScore = v.scores[id]!;
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

const llama2cTexts = [
  "Once upon a time, there was a little girl named Lily.",
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
  "",
  " ",
  "  two leading spaces",
  "trailing space ",
  "a",
  'Tom said, "Let\'s go!" and they went.\nThe end.\n',
  "tabs\tand\r\nnewlines",
  "héllo wörld — naïve café",
  "日本語のテキスト",
  "emoji 🦙🚀 and ✅",
  "numbers 1234567890 3.14",
  "ﬁ ligature, ZWJ 👩‍👩‍👧, combining é",
  "€™ and â",
  "Spot and Sue were best friends. They liked to play with the ball in the big green yard.",
];

/** tok512 as a Tokenizer; each text must encode like run.c's encode() and decode back exactly. */
function checkAgainstRunc(texts: string[]): void {
  const v = readLlama2cTokenizer(sharedPath(TOK512), 512);
  const tok = Tokenizer.fromJSON(
    llama2cTokenizerJson(v),
    tokenizerConfigJson({ bosToken: "<s>", eosToken: "</s>", unkToken: "<unk>" }),
  );
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  for (const text of texts) {
    const expected = runcEncode(v, text);
    assert.deepEqual(tok.encode(text, { addBos: false }), expected, JSON.stringify(text));
    assert.deepEqual(tok.encode(text, { addBos: true }), [1, ...expected]);
    assert.equal(tok.decode(expected), text, `decode of ${JSON.stringify(text)}`);
  }
}

test("llama2cTokenizerJson encodes exactly like run.c encode() on stories260K's tok512", {
  skip: needsShared(TOK512),
}, () => {
  checkAgainstRunc(llama2cTexts);
});

test("llama2cTokenizerJson encodes tinyshakespeare exactly like run.c encode()", {
  skip: needsShared(TOK512, SHAKESPEARE),
}, () => {
  const lines = readFileSync(sharedPath(SHAKESPEARE), "utf8").split("\n");
  checkAgainstRunc([...lines.slice(0, 400), lines.slice(400, 440).join("\n")]);
});

test("stories260K greedy reference ids decode to the documented story", {
  skip: needsShared(TOK512, REFERENCE),
}, () => {
  const v = readLlama2cTokenizer(sharedPath(TOK512), 512);
  const tok = Tokenizer.fromJSON(
    llama2cTokenizerJson(v),
    tokenizerConfigJson({ bosToken: "<s>", eosToken: "</s>" }),
  );
  const ref = JSON.parse(readFileSync(sharedPath(REFERENCE), "utf8")) as {
    greedy_from_bos_200: number[];
  };
  const text = tok.decode([1, ...ref.greedy_from_bos_200], { skipSpecial: true });
  assert.ok(
    text.startsWith(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    ),
    text.slice(0, 120),
  );
  // Re-encoding the first sentence gives the model's own token ids.
  const first = "Once upon a time, there was a little girl named Lily.";
  const ids = tok.encode(first, { addBos: false });
  assert.deepEqual(ids, ref.greedy_from_bos_200.slice(0, ids.length));
});

// ---- builders without ../shared ---------------------------------------------------------------------

function toySpm() {
  const tokens = ["<unk>", "<s>", "</s>"];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const pieces = ["▁t", "he", "▁the", "▁a", "ab", "abc", "bc", "▁", "t", "h", "e", "a", "b", "c", "é"];
  const scores: number[] = tokens.map(() => 0);
  pieces.forEach((p, i) => {
    tokens.push(p);
    scores.push(-i);
  });
  return { tokens, scores };
}

test("spmMerges ranks merges by the merged piece's score, splits by (left id, right id)", () => {
  const { tokens, scores } = toySpm();
  const merges = spmMerges(tokens, scores);
  assert.deepEqual(merges.slice(0, 6), [
    ["▁", "t"],
    ["h", "e"],
    ["▁t", "he"],
    ["▁", "a"],
    ["a", "b"],
    ["ab", "c"],
  ]);
  assert.deepEqual(merges[6], ["a", "bc"]);
  assert.deepEqual(merges[7], ["b", "c"]);
});

test("fuzz regression: spmMerges gives a piece longer than MAX_MERGED_PIECE no merges, so a huge piece cannot hang", () => {
  // Before: every split of every piece was tried, quadratic in its length: a corrupt 20000-character
  // piece took seconds, a 200000-character one minutes.
  const long = "a".repeat(MAX_MERGED_PIECE + 1);
  const tokens = ["a", long.slice(1), long, "a".repeat(20_000)];
  const t0 = performance.now();
  const merges = spmMerges(tokens, [0, -1, -2, -3]);
  assert.ok(performance.now() - t0 < 1000);
  assert.ok(!merges.some(([l, r]) => l.length + r.length > MAX_MERGED_PIECE));
  assert.deepEqual(
    spmMerges(["a", "a".repeat(MAX_MERGED_PIECE - 1), "a".repeat(MAX_MERGED_PIECE)], [0, -1, -2]).length,
    2,
  );
});

test("spmTokenizerJson: dummy prefix, merges, byte fallback, exact decode", () => {
  const { tokens, scores } = toySpm();
  const json = spmTokenizerJson({ tokens, scores, bos: 1, eos: 2, unk: 0 });
  const tok = Tokenizer.fromJSON(
    json,
    tokenizerConfigJson({ bosToken: "<s>", eosToken: "</s>", unkToken: "<unk>" }),
  );
  const id = (t: string) => tok.tokenToId(t)!;
  assert.deepEqual(tok.encode("the", { addBos: false }), [id("▁the")]);
  assert.deepEqual(tok.encode("the abc", { addBos: false }), [id("▁the"), id("▁a"), id("bc")]);
  // "x" is not in the vocab: byte fallback <0x78>; "ü" -> two UTF-8 bytes
  assert.deepEqual(tok.encode("xü", { addBos: false }), [id("▁"), 3 + 0x78, 3 + 0xc3, 3 + 0xbc]);
  assert.deepEqual(tok.encode("the"), [1, id("▁the")]);
  assert.deepEqual(tok.encode(""), [1]);
  assert.deepEqual(tok.encode("", { addBos: false }), []);
  for (const s of ["the abc", " the", "xü é", "a\nb"])
    assert.equal(tok.decode(tok.encode(s, { addBos: false })), s);
  // written to disk and loaded back
  const d2 = mkdtempSync(path.join(tmp, "spm-"));
  writeFileSync(path.join(d2, "tokenizer.json"), JSON.stringify(json));
  writeFileSync(
    path.join(d2, "tokenizer_config.json"),
    JSON.stringify(tokenizerConfigJson({ bosToken: "<s>", eosToken: "</s>" })),
  );
  const t2 = readTokenizer(d2);
  assert.deepEqual(t2.encode("the abc"), tok.encode("the abc"));
  assert.equal(t2.eosId, 2);
});

test("gpt2TokenizerJson: byte-level BPE with string or pair merges", () => {
  // byte-level alphabet: printable ASCII maps to itself, space -> "Ġ"
  const tokens = ["a", "b", "c", "Ġ", "ab", "Ġab", "<|endoftext|>"];
  for (const merges of [
    ["a b", "Ġ ab"],
    [
      ["a", "b"],
      ["Ġ", "ab"],
    ] as [string, string][],
  ]) {
    const json = gpt2TokenizerJson({ tokens, merges });
    const tok = Tokenizer.fromJSON(
      json,
      tokenizerConfigJson({ bosToken: "<|endoftext|>", eosToken: "<|endoftext|>" }),
    );
    assert.deepEqual(tok.encode("ab ab c"), [4, 5, 3, 2]);
    assert.deepEqual(tok.encode("ab<|endoftext|>"), [4, 6]);
    assert.equal(tok.decode([4, 5, 3, 2, 6]), "ab ab c<|endoftext|>");
    assert.equal(tok.decode([4, 5, 6], { skipSpecial: true }), "ab ab");
    assert.equal(tok.eosId, 6);
    assert.equal(tok.vocabSize, 7);
  }
});

test("Tokenizer.fromDir: missing or invalid files are FileFormatErrors", () => {
  const d = mkdtempSync(path.join(tmp, "bad-"));
  assert.throws(
    () => readTokenizer(d),
    (e: unknown) => e instanceof FileFormatError && e.message.startsWith(path.join(d, "tokenizer.json")),
  );
  writeFileSync(path.join(d, "tokenizer.json"), "{not json");
  assert.throws(
    () => readTokenizer(d),
    (e: unknown) => e instanceof FileFormatError && /invalid JSON/.test(e.message),
  );
});

test("fuzz regression: tokenizer.json ids that are not token ids are refused when loading", () => {
  // Before: any JSON value was taken as an id; a string id came back out of encode() and decode()
  // then threw a plain Error.
  const base = gpt2TokenizerJson({ tokens: ["a", "b", "ab"], merges: ["a b"] });
  const model = base["model"] as Record<string, unknown>;
  for (const id of ["a", -1, 0.5, 2 ** 31]) {
    const json = { ...base, model: { ...model, vocab: { a: id, b: 1, ab: 2 } } };
    assert.throws(
      () => Tokenizer.fromJSON(json),
      (e: unknown) =>
        e instanceof LoraTsError &&
        /model\.vocab token "a" has id .*, not an integer in \[0, 2\^31\)/.test(e.message),
    );
  }
});

test("fuzz regression: the vocabulary size does not walk every id up to the largest", () => {
  // Before: get_vocab() visited every id below the largest: one id of 2^31 - 1 took minutes.
  const base = gpt2TokenizerJson({ tokens: ["a", "b", "ab"], merges: ["a b"] });
  const model = base["model"] as Record<string, unknown>;
  const t0 = performance.now();
  const tok = Tokenizer.fromJSON({ ...base, model: { ...model, vocab: { a: 0, b: 1, ab: 2 ** 31 - 1 } } });
  assert.equal(tok.vocabSize, 2 ** 31);
  assert.ok(performance.now() - t0 < 1000);
});

test("fuzz regression: a corrupt part that fails only when used is one line naming the file", () => {
  // Before: a post-processor of the wrong shape loaded, then encode() threw a bare TypeError.
  const d = mkdtempSync(path.join(tmp, "corrupt-"));
  const json = spmTokenizerJson({
    tokens: ["<unk>", "<s>", "</s>", "▁", "a"],
    scores: [0, 0, 0, -1, -2],
    bos: 1,
    eos: 2,
    unk: 0,
  });
  writeFileSync(
    path.join(d, "tokenizer.json"),
    JSON.stringify({ ...json, post_processor: { type: "TemplateProcessing", single: [-1], pair: [] } }),
  );
  const tok = readTokenizer(d);
  assert.throws(
    () => tok.encode("a"),
    (e: unknown) =>
      e instanceof FileFormatError &&
      e.message.startsWith(`${path.join(d, "tokenizer.json")}: the tokenizer failed to encode (`) &&
      !/[\r\n]/.test(e.message),
  );
  // Before: V8's JSON error quotes the text raw, a \r included.
  writeFileSync(path.join(d, "tokenizer.json"), "\u0001\r{");
  assert.throws(
    () => readTokenizer(d),
    (e: unknown) =>
      e instanceof FileFormatError && e.message.includes("invalid JSON") && !/[\r\n]/.test(e.message),
  );
});
