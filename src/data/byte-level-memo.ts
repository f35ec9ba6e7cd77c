/**
 * A word cache for @huggingface/tokenizers' ByteLevel pre-tokenizer (GPT-2, Llama 3, Qwen, SmolLM and
 * the default model all use it).
 *
 * For every pre-token the library turns the word into UTF-8 bytes and each byte into its printable
 * stand-in (GPT-2's bytes-to-unicode table), building fresh arrays each time. Measured on Alpaca rows
 * with the default model's tokenizer that was over half of encode()'s time, for words that repeat all
 * through a data set. Hugging Face's Rust tokenizers keep a word cache for the same reason. This keeps
 * the library's own split (its regex, its add_prefix_space and use_regex settings, read from the
 * instance) and caches only the word → stand-in string map, which is a pure function of the word; so
 * the ids are the library's own (test/data/byte-level-memo.test.ts checks them against an untouched
 * tokenizer on random text).
 *
 * Only an instance that has exactly the fields this relies on is changed; any other pre-tokenizer,
 * or a library version whose ByteLevel looks different, is left as it is (slower, never wrong).
 */

/** The fields of the library's ByteLevel pre-tokenizer that its pre_tokenize_text reads. */
interface ByteLevelFields {
  add_prefix_space: boolean;
  use_regex: boolean;
  pattern: RegExp;
  byte_encoder: Record<number, string>;
  pre_tokenize_text: (text: string, options?: unknown) => string[];
}

/** Words kept per pre-tokenizer; the map is emptied when full (a data set's vocabulary is far smaller). */
const MAX_WORDS = 1 << 17;

function isByteLevel(p: Record<string, unknown>): p is Record<string, unknown> & ByteLevelFields {
  return (
    (p.constructor as { name?: string } | undefined)?.name === "ByteLevel" &&
    typeof p["add_prefix_space"] === "boolean" &&
    typeof p["use_regex"] === "boolean" &&
    p["pattern"] instanceof RegExp &&
    typeof p["byte_encoder"] === "object" &&
    p["byte_encoder"] !== null &&
    typeof p["pre_tokenize_text"] === "function"
  );
}

function memoize(p: ByteLevelFields): void {
  const words = new Map<string, string>();
  const utf8 = new TextEncoder();
  const table = p.byte_encoder;
  p.pre_tokenize_text = function (this: ByteLevelFields, text: string): string[] {
    const t = this.add_prefix_space && !text.startsWith(" ") ? ` ${text}` : text;
    const pieces = this.use_regex ? (t.match(this.pattern) ?? []) : [t];
    return pieces.map((w) => {
      let s = words.get(w);
      if (s === undefined) {
        s = "";
        for (const b of utf8.encode(w)) s += table[b];
        if (words.size >= MAX_WORDS) words.clear();
        words.set(w, s);
      }
      return s;
    });
  };
}

/**
 * Gives every ByteLevel pre-tokenizer inside `tokenizer` (the library's Tokenizer; directly, or in a
 * Sequence) a word cache. Returns how many it changed.
 */
export function memoizeByteLevel(tokenizer: object): number {
  let changed = 0;
  const seen = new Set<unknown>();
  const visit = (p: unknown) => {
    // The library's pre-tokenizers are callable objects: functions with fields.
    if (p === null || (typeof p !== "object" && typeof p !== "function") || seen.has(p)) return;
    seen.add(p);
    const o = p as Record<string, unknown>;
    if (isByteLevel(o)) {
      memoize(o);
      changed++;
      return;
    }
    // The Tokenizer holds its pre-tokenizer; a Sequence holds its members in `tokenizers`.
    for (const key of ["pre_tokenizer", "tokenizers"]) {
      const v = o[key];
      if (Array.isArray(v)) v.forEach(visit);
      else visit(v);
    }
  };
  visit(tokenizer);
  return changed;
}
