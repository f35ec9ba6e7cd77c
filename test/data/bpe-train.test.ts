import assert from "node:assert/strict";
import { test } from "node:test";
import { bytesToUnicode, countWords, trainBpe } from "../../src/data/bpe-train.js";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { gpt2TokenizerJson, tokenizerConfigJson } from "../../src/io/tokenizer-json.js";
import { Rng } from "../../src/util/rng.js";

const NAMES = ["Lily", "Tom", "Mia", "Ben", "Sara", "Max"];
const THINGS = ["ball", "kite", "red hat", "little boat", "big box", "shiny stone"];
const PLACES = ["park", "garden", "beach", "forest", "farm"];

/** A small seeded story-like corpus. */
function corpus(n: number, seed = 1): string[] {
  const rng = new Rng(seed);
  const pick = <T>(a: T[]) => a[rng.next() % a.length]!;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = pick(NAMES);
    const thing = pick(THINGS);
    const place = pick(PLACES);
    out.push(
      `Once upon a time, ${name} went to the ${place}. ${name} found a ${thing}. ` +
        `"Look at my ${thing}!" ${name} said. They played all day and were very happy.\n\n` +
        `It's ${i % 7} o'clock, and they'll go home soon.`,
    );
  }
  return out;
}

const SPECIAL = "<|endoftext|>";

function train(texts: string[], vocabSize = 400) {
  const vocab = trainBpe(texts, { vocabSize, specialTokens: [SPECIAL] });
  const tok = Tokenizer.fromJSON(
    gpt2TokenizerJson(vocab),
    tokenizerConfigJson({ bosToken: SPECIAL, eosToken: SPECIAL, padToken: SPECIAL, addBosToken: true }),
  );
  return { vocab, tok };
}

test("bytesToUnicode matches GPT-2's table", () => {
  const t = bytesToUnicode();
  assert.equal(t.length, 256);
  assert.equal(new Set(t).size, 256);
  assert.equal(t[0x20], "Ġ");
  assert.equal(t[0x0a], "Ċ");
  assert.equal(t[0x41], "A");
  assert.equal(t[0x00], "Ā");
  assert.equal(t[0xad], "Ń"); // the 68th unprintable byte: U+0100 + 67
});

test("countWords splits like GPT-2 and skips special tokens", () => {
  const c = countWords([`Hi there, it's 42!  ok${SPECIAL}Hi`], [SPECIAL]);
  assert.deepEqual(
    [...c.entries()].sort(),
    [
      [" ", 1],
      [" 42", 1],
      [" it", 1],
      [" ok", 1],
      [" there", 1],
      ["!", 1],
      [",", 1],
      ["'s", 1],
      ["Hi", 2],
    ].sort(),
  );
});

test("trained tokenizer: layout, round trip, compression", () => {
  const texts = corpus(300);
  const { vocab, tok } = train(texts);
  assert.equal(vocab.tokens.length, 400);
  assert.equal(vocab.tokens[0], SPECIAL);
  assert.deepEqual(vocab.specialIds, [0]);
  assert.equal(vocab.merges.length, 400 - 257);
  assert.equal(tok.bosId, 0);
  assert.equal(tok.eosId, 0);
  assert.equal(tok.vocabSize, 400);

  const samples = [
    "Once upon a time, Lily went to the park.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\n  indented",
    "Ünïcödé: naïve café, 日本語, emoji 🦜🎈, Ελληνικά",
    "numbers 3.14159 and 1,000,000; punctuation?!... (brackets) [x] {y}",
    "It's they're we've I'm you'll he'd",
    "",
    " ",
    "a",
    "zzzzqqqq xylophone",
  ];
  for (const s of samples) {
    const ids = tok.encode(s, { addBos: false });
    assert.equal(tok.decode(ids), s, `round trip of ${JSON.stringify(s)}`);
    for (const id of ids) assert.ok(id >= 0 && id < 400);
  }
  // BOS and the special token in text.
  const withBos = tok.encode("Hello", { addBos: true });
  assert.equal(withBos[0], 0);
  assert.equal(tok.decode(withBos, { skipSpecial: true }), "Hello");
  const joined = tok.encode(`one story${SPECIAL}two`, { addBos: false });
  assert.ok(joined.includes(0), "the special token in text becomes id 0");
  assert.equal(tok.decode(joined), `one story${SPECIAL}two`);

  // A training-like sentence needs far fewer tokens than bytes.
  const s = `Once upon a time, Mia went to the garden. Mia found a shiny stone. "Look at my shiny stone!" Mia said.`;
  const n = tok.encode(s, { addBos: false }).length;
  const bytes = Buffer.byteLength(s);
  assert.ok(n * 3 < bytes, `${n} tokens for ${bytes} bytes`);
});

test("training is deterministic and independent of text order", () => {
  const texts = corpus(200, 7);
  const a = trainBpe(texts, { vocabSize: 350 });
  const b = trainBpe(texts, { vocabSize: 350 });
  const c = trainBpe([...texts].reverse(), { vocabSize: 350 });
  assert.deepEqual(a.merges, b.merges);
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.merges, c.merges);
  // The first merges are the most frequent pairs; the most common word of the corpus is a token.
  assert.ok(a.tokens.includes("Ġthe"));
});

test("several special tokens; small corpora stop early; bad options are rejected", () => {
  const v = trainBpe(["ab ab ab ab", "cd"], { vocabSize: 1000, specialTokens: ["<s>", "</s>"] });
  assert.deepEqual(v.tokens.slice(0, 2), ["<s>", "</s>"]);
  assert.deepEqual(v.specialIds, [0, 1]);
  assert.ok(v.tokens.length < 1000, "stops when no pair occurs at least twice");
  assert.deepEqual(v.merges[0], ["a", "b"]);
  const tok = Tokenizer.fromJSON(gpt2TokenizerJson(v));
  assert.equal(tok.decode(tok.encode("ab cd <s>", { addBos: false })), "ab cd <s>");
  assert.throws(() => trainBpe(["x"], { vocabSize: 100 }), /vocabSize/);
  assert.throws(() => trainBpe(["x"], { vocabSize: 300, specialTokens: ["a", "a"] }), /repeat/);
});
