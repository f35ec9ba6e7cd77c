/**
 * A byte-level BPE tokenizer trainer, GPT-2 style, for users who train their own small base models
 * (the project's default model uses it). Its output feeds `gpt2TokenizerJson`:
 *
 *   const vocab = trainBpe(texts, { vocabSize: 2048, specialTokens: ["<|endoftext|>"] });
 *   const json = gpt2TokenizerJson(vocab);   // → tokenizer.json, encoded/decoded by Tokenizer
 *
 * How it trains:
 *  - Pre-tokenization: each text is first cut at the special tokens (they never take part in
 *    merges), then split by GPT-2's pattern
 *    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` — the same split the
 *    ByteLevel pre-tokenizer of tokenizer.json applies when encoding. Distinct pieces ("words") are
 *    counted once, so the cost of training depends on the number of distinct words, not on the
 *    size of the text.
 *  - Each word becomes its UTF-8 bytes, each byte written as one printable character by GPT-2's
 *    bytes_to_unicode table (space → "Ġ", newline → "Ċ", ...).
 *  - Merges: repeatedly, the adjacent pair with the highest frequency (summed over words weighted by
 *    their counts) is merged into a new token, until the vocabulary holds `vocabSize` tokens or no
 *    pair occurs any more. Ties go to the pair with the smaller (left id, right id), so training is
 *    deterministic: the same texts (in any order) and options give the same merges. Pair counts are
 *    updated incrementally — only the words that contain the merged pair are revisited — and the
 *    best pair is kept in a lazy max-heap.
 *
 * Vocabulary layout (ids):
 *  - 0 .. S-1: the special tokens, in the order given (default `["<|endoftext|>"]`, so
 *    `<|endoftext|>` is id 0; it serves as BOS, EOS and padding for the default model).
 *  - S .. S+255: all 256 byte symbols, in byte order (so any text can be encoded, whatever it holds).
 *  - then one token per merge, in merge order. As in Hugging Face's trainer, a merge whose result
 *    already is a token (two different splits of the same string) is kept as a merge but adds no
 *    new id; the loop goes on until `vocabSize` ids exist.
 */
import { LoraTsError } from "../util/errors.js";

/** GPT-2's pre-tokenization pattern (as used by the ByteLevel pre-tokenizer). */
export const GPT2_SPLIT_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's bytes_to_unicode: byte b → a printable character. The printable Latin-1 bytes ("!".."~",
 * "¡".."¬", "®".."ÿ") map to themselves; the other 68 bytes map, in order, to U+0100, U+0101, ...
 */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  const keep = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(keep(b) ? b : 256 + n++);
  return table;
}

export interface BpeTrainOptions {
  /** Total vocabulary size: special tokens + 256 byte symbols + merges. At least 256 + specials. */
  vocabSize: number;
  /** Special tokens, ids 0.. in this order (default ["<|endoftext|>"]). */
  specialTokens?: string[];
  /** Ignore pairs occurring fewer times than this (default 2: a pair seen once is not worth a token). */
  minFrequency?: number;
}

/** A byte-level BPE vocabulary, in the shape io/tokenizer-json.ts gpt2TokenizerJson takes. */
export interface BpeTrainResult {
  tokens: string[];
  /** Merges, highest priority first. */
  merges: [string, string][];
  /** Ids of the special tokens (0 .. S-1). */
  specialIds: number[];
}

/** Counts GPT-2 pre-tokenized pieces over `texts`, skipping the special tokens. */
export function countWords(
  texts: Iterable<string>,
  specialTokens: readonly string[] = [],
): Map<string, number> {
  const counts = new Map<string, number>();
  const specials = [...specialTokens].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
  const specialRe =
    specials.length > 0
      ? new RegExp(specials.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"))
      : null;
  const add = (part: string) => {
    for (const m of part.matchAll(GPT2_SPLIT_PATTERN)) {
      const w = m[0];
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  };
  for (const text of texts) {
    if (typeof text !== "string")
      throw new LoraTsError(`trainBpe: texts must be strings, got ${typeof text}`);
    if (specialRe) for (const part of text.split(specialRe)) add(part);
    else add(text);
  }
  return counts;
}

// Pair keys: left * 2^21 + right (ids below 2^21, so keys stay exact doubles).
const SHIFT = 2 ** 21;

/** A max-heap of (count, key), ties by smaller key; entries may be stale (checked on pop). */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the top entry and returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    const n = this.counts.length;
    if (n > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < n && this.above(l, best)) best = l;
        if (r < n && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/**
 * Trains a byte-level BPE vocabulary on `texts` (see the module comment). The result can be passed
 * straight to `gpt2TokenizerJson`.
 */
export function trainBpe(texts: Iterable<string>, options: BpeTrainOptions): BpeTrainResult {
  const specialTokens = options.specialTokens ?? ["<|endoftext|>"];
  const minFrequency = Math.max(1, options.minFrequency ?? 2);
  const { vocabSize } = options;
  if (new Set(specialTokens).size !== specialTokens.length) {
    throw new LoraTsError(`trainBpe: special tokens repeat: ${JSON.stringify(specialTokens)}`);
  }
  if (specialTokens.some((s) => s.length === 0)) throw new LoraTsError("trainBpe: a special token is empty");
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specialTokens.length || vocabSize >= SHIFT) {
    throw new LoraTsError(
      `trainBpe: vocabSize must be an integer from ${256 + specialTokens.length} (256 bytes + ` +
        `${specialTokens.length} special tokens) to ${SHIFT - 1}, got ${vocabSize}`,
    );
  }

  const byteChars = bytesToUnicode();
  const tokens: string[] = [...specialTokens];
  const tokenIds = new Map<string, number>();
  for (let i = 0; i < tokens.length; i++) tokenIds.set(tokens[i]!, i);
  const byteBase = tokens.length;
  for (const ch of byteChars) {
    if (tokenIds.has(ch)) {
      throw new LoraTsError(`trainBpe: special token ${JSON.stringify(ch)} clashes with a byte symbol`);
    }
    tokenIds.set(ch, tokens.length);
    tokens.push(ch);
  }

  // Words as arrays of symbol ids, with their counts. Sorted so the result does not depend on the
  // order in which words were first seen.
  const counted = countWords(texts, specialTokens);
  const wordStrings = [...counted.keys()].sort();
  const encoder = new TextEncoder();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const w of wordStrings) {
    const bytes = encoder.encode(w);
    if (bytes.length < 2) continue; // a single byte has no pairs
    words.push(Array.from(bytes, (b) => byteBase + b));
    freqs.push(counted.get(w)!);
  }

  // Pair counts and, per pair, the words that (may) contain it.
  const pairCounts = new Map<number, number>();
  const where = new Map<number, number[]>();
  const lastWordOf = new Map<number, number>(); // avoids listing a word twice for one pair
  const noteWord = (key: number, wi: number) => {
    if (lastWordOf.get(key) === wi) return;
    lastWordOf.set(key, wi);
    let list = where.get(key);
    if (!list) {
      list = [];
      where.set(key, list);
    }
    list.push(wi);
  };
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi]!;
    const f = freqs[wi]!;
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i]! * SHIFT + w[i + 1]!;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + f);
      noteWord(key, wi);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCounts) heap.push(c, key);

  const merges: [string, string][] = [];
  const touched = new Set<number>();
  while (tokens.length < vocabSize && heap.size > 0) {
    const [count, key] = heap.pop();
    if (pairCounts.get(key) !== count) continue; // stale entry
    if (count < minFrequency) break;
    const a = Math.floor(key / SHIFT);
    const b = key - a * SHIFT;
    const merged = tokens[a]! + tokens[b]!;
    let c = tokenIds.get(merged);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(merged);
      tokenIds.set(merged, c);
    }
    merges.push([tokens[a]!, tokens[b]!]);

    // Revisit the words that contain (a, b): take their pairs out, merge, put their pairs back.
    touched.clear();
    const list = where.get(key) ?? [];
    where.delete(key);
    for (const wi of list) {
      const w = words[wi]!;
      let found = false;
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === a && w[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue;
      const f = freqs[wi]!;
      for (let i = 0; i + 1 < w.length; i++) {
        const k = w[i]! * SHIFT + w[i + 1]!;
        pairCounts.set(k, pairCounts.get(k)! - f);
        touched.add(k);
      }
      const out: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          out.push(c);
          i++;
        } else out.push(w[i]!);
      }
      words[wi] = out;
      for (let i = 0; i + 1 < out.length; i++) {
        const k = out[i]! * SHIFT + out[i + 1]!;
        pairCounts.set(k, (pairCounts.get(k) ?? 0) + f);
        touched.add(k);
        if (k !== key) noteWord(k, wi);
      }
    }
    for (const k of touched) {
      const n = pairCounts.get(k)!;
      if (n <= 0) {
        pairCounts.delete(k);
        where.delete(k);
        lastWordOf.delete(k);
      } else heap.push(n, k);
    }
  }

  const specialIds = specialTokens.map((_, i) => i);
  return { tokens, merges, specialIds };
}
