/**
 * tokenizer.json builders for vocabularies that come from elsewhere (GGUF metadata, llama2.c's
 * tokenizer.bin, a trained byte-level BPE), shaped like the files Hugging Face's converters write:
 *  - spmTokenizerJson: Llama SentencePiece-BPE — model BPE with byte_fallback, merges derived from
 *    the piece scores the way transformers' SentencePieceExtractor does, normalizer
 *    Prepend("▁") + Replace(" " → "▁") (the dummy prefix is added to every non-empty text),
 *    pre_tokenizer null, decoder Replace("▁" → " ") / ByteFallback / Fuse / Strip(1 leading " ").
 *  - gpt2TokenizerJson: GPT-2 byte-level BPE (ByteLevel pre-tokenizer with GPT-2's regex, ByteLevel
 *    decoder).
 *  - llama2cTokenizerJson: llama2.c's tokenizer.bin vocab → an spm tokenizer.json that encodes like
 *    run.c's encode() (without BOS/EOS).
 *  - tokenizerFromGguf: either of the first two from a GGUF file's tokenizer.ggml.* metadata.
 * Merges are written in the pair form [["a","b"], ...] (tokenizers ≥ 0.20), which also survives
 * tokens that contain spaces. data/tokenizer.ts loads the result.
 */
import { FileFormatError, LoraTsError } from "../util/errors.js";
import type { GgufFile } from "./gguf.js";

/** A tokenizer.json / tokenizer_config.json object (plain JSON). */
export type JsonObject = Record<string, unknown>;

/** SentencePiece piece types, as GGUF `tokenizer.ggml.token_type` stores them. */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface SpmVocab {
  tokens: string[];
  scores: ArrayLike<number>;
  /** Piece types (TokenType); without them ids bos/eos/unk are control and "<0xXX>" are bytes. */
  types?: ArrayLike<number>;
  bos: number;
  eos: number;
  unk: number;
  /** Whether the post-processor adds BOS (Llama: true). */
  addBos?: boolean;
}

function addedToken(id: number, content: string, special = true): JsonObject {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

function vocabObject(tokens: string[]): JsonObject {
  const vocab: JsonObject = {};
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (Object.hasOwn(vocab, t)) {
      throw new LoraTsError(`vocabulary has token ${JSON.stringify(t)} twice (ids ${vocab[t]} and ${i})`);
    }
    vocab[t] = i;
  }
  return vocab;
}

/** Longest piece (UTF-16 units) whose merges spmMerges derives. */
export const MAX_MERGED_PIECE = 256;

/**
 * BPE merges implied by a SentencePiece vocabulary, as transformers' SentencePieceExtractor derives
 * them: every split of a piece into two pieces of the vocabulary is a merge; merges are ranked by
 * the score of the merged piece (highest first; ties keep vocabulary order), and the splits of one
 * piece by (id of left, id of right).
 */
export function spmMerges(tokens: string[], scores: ArrayLike<number>): [string, string][] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const all: { l: string; r: string; score: number; order: number }[] = [];
  for (let i = 0; i < tokens.length; i++) {
    // Splitting costs the square of a piece's length: a corrupt vocabulary with one huge piece would
    // hang here. Real SentencePiece pieces are short (16 characters by default), so longer ones are
    // left without merges (they stay reachable as added tokens).
    if (tokens[i]!.length > MAX_MERGED_PIECE) continue;
    const cps = Array.from(tokens[i]!);
    const local: { l: string; r: string; li: number; ri: number }[] = [];
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join("");
      const r = cps.slice(k).join("");
      const li = ids.get(l);
      const ri = ids.get(r);
      if (li !== undefined && ri !== undefined) local.push({ l, r, li, ri });
    }
    local.sort((a, b) => a.li - b.li || a.ri - b.ri);
    for (const m of local) all.push({ l: m.l, r: m.r, score: scores[i]!, order: all.length });
  }
  all.sort((a, b) => b.score - a.score || a.order - b.order);
  return all.map((m) => [m.l, m.r]);
}

function templateBos(bosToken: string, bosId: number): JsonObject {
  return {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: bosToken, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [
      { SpecialToken: { id: bosToken, type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: bosToken, type_id: 1 } },
      { Sequence: { id: "B", type_id: 1 } },
    ],
    special_tokens: { [bosToken]: { id: bosToken, ids: [bosId], tokens: [bosToken] } },
  };
}

/** tokenizer.json for a Llama SentencePiece-BPE vocabulary (tokens use "▁" for spaces). */
export function spmTokenizerJson(v: SpmVocab): JsonObject {
  const { tokens, scores } = v;
  if (scores.length !== tokens.length) {
    throw new LoraTsError(`spm vocab: ${tokens.length} tokens but ${scores.length} scores`);
  }
  const typeOf = (i: number): number => {
    if (v.types) return v.types[i]!;
    if (i === v.unk) return TokenType.UNKNOWN;
    if (i === v.bos || i === v.eos) return TokenType.CONTROL;
    return /^<0x[0-9A-F]{2}>$/.test(tokens[i]!) ? TokenType.BYTE : TokenType.NORMAL;
  };
  const added: JsonObject[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = typeOf(i);
    if (t === TokenType.UNKNOWN || t === TokenType.CONTROL) added.push(addedToken(i, tokens[i]!, true));
  }
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: v.addBos === false ? null : templateBos(tokens[v.bos]!, v.bos),
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: tokens[v.unk]!,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabObject(tokens),
      merges: spmMerges(tokens, scores),
    },
  };
}

export interface Gpt2Vocab {
  /** Byte-level tokens ("Ġ" for space, ...). */
  tokens: string[];
  /** "a b" strings (GGUF / merges.txt form) or [a, b] pairs, highest priority first. */
  merges: (string | [string, string])[];
  /** Ids of special tokens (default: "<|endoftext|>" if present). */
  specialIds?: number[];
}

/** tokenizer.json for a GPT-2 style byte-level BPE vocabulary. */
export function gpt2TokenizerJson(v: Gpt2Vocab): JsonObject {
  const vocab = vocabObject(v.tokens);
  const merges: [string, string][] = v.merges.map((m) => {
    if (typeof m !== "string") return m;
    const k = m.indexOf(" ");
    if (k <= 0 || m.indexOf(" ", k + 1) !== -1) throw new LoraTsError(`bad merge ${JSON.stringify(m)}`);
    return [m.slice(0, k), m.slice(k + 1)];
  });
  let specials = v.specialIds;
  if (!specials) {
    const eot = vocab["<|endoftext|>"];
    specials = typeof eot === "number" ? [eot] : [];
  }
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((id) => addedToken(id, v.tokens[id]!, true)),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** The llama2.c tokenizer.bin contents this needs (see llama2c.ts readLlama2cTokenizer). */
export interface Llama2cVocabLike {
  tokens: string[];
  scores: ArrayLike<number>;
}

/**
 * tokenizer.json for a llama2.c tokenizer.bin vocabulary (ids 0..2 = <unk>, <s>, </s>; byte pieces
 * "<0xXX>"; spaces stored as " "). It encodes like run.c's encode(text, bos=0, eos=0): a "▁" dummy
 * prefix for non-empty text, whole UTF-8 characters else byte pieces, then repeated merging of the
 * best-scoring adjacent pair. Known differences from run.c: the literal texts "<unk>", "<s>", "</s>"
 * become special tokens, and a literal "▁" (U+2581) in the text counts as a space.
 */
export function llama2cTokenizerJson(v: Llama2cVocabLike, options: { addBos?: boolean } = {}): JsonObject {
  const tokens = v.tokens.map((t, i) => {
    if (i === 0) return "<unk>";
    if (i === 1) return "<s>";
    if (i === 2) return "</s>";
    return t.replaceAll(" ", "▁");
  });
  const types = tokens.map((t, i) =>
    i === 0
      ? TokenType.UNKNOWN
      : i < 3
        ? TokenType.CONTROL
        : /^<0x[0-9A-F]{2}>$/.test(t)
          ? TokenType.BYTE
          : TokenType.NORMAL,
  );
  return spmTokenizerJson({
    tokens,
    scores: v.scores,
    types,
    bos: 1,
    eos: 2,
    unk: 0,
    addBos: options.addBos ?? true,
  });
}

export interface TokenizerConfigOptions {
  bosToken?: string | null;
  eosToken?: string | null;
  unkToken?: string | null;
  padToken?: string | null;
  addBosToken?: boolean;
  addEosToken?: boolean;
  tokenizerClass?: string;
  modelMaxLength?: number;
  chatTemplate?: string;
}

/** A tokenizer_config.json object (clean_up_tokenization_spaces off, so decoding is exact). */
export function tokenizerConfigJson(o: TokenizerConfigOptions): JsonObject {
  const c: JsonObject = {
    add_bos_token: o.addBosToken ?? false,
    add_eos_token: o.addEosToken ?? false,
    bos_token: o.bosToken ?? null,
    eos_token: o.eosToken ?? null,
    unk_token: o.unkToken ?? null,
    pad_token: o.padToken ?? null,
    clean_up_tokenization_spaces: false,
    tokenizer_class: o.tokenizerClass ?? "PreTrainedTokenizerFast",
  };
  if (o.modelMaxLength !== undefined) c["model_max_length"] = o.modelMaxLength;
  if (o.chatTemplate !== undefined) c["chat_template"] = o.chatTemplate;
  return c;
}

/**
 * tokenizer.json + tokenizer_config.json from a GGUF file's `tokenizer.ggml.*` metadata.
 * Supports tokenizer.ggml.model "llama" (SentencePiece BPE) and "gpt2" with pre-tokenizer "gpt-2"
 * (or absent); other BPE pre-tokenizers need their own split regex and are rejected.
 */
export function tokenizerFromGguf(g: GgufFile): { tokenizer: JsonObject; config: JsonObject } {
  try {
    return ggufTokenizer(g);
  } catch (e) {
    // The builders' own errors (a token given twice, a bad merge) name no file.
    if (e instanceof LoraTsError && !(e instanceof FileFormatError))
      throw new FileFormatError(g.path, e.message);
    throw e;
  }
}

function ggufTokenizer(g: GgufFile): { tokenizer: JsonObject; config: JsonObject } {
  const model = g.string("tokenizer.ggml.model");
  const tokens = g.strings("tokenizer.ggml.tokens");
  const types = g.get("tokenizer.ggml.token_type") as ArrayLike<number> | undefined;
  const id = (key: string): number | undefined => {
    const v = g.get(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    return n >= 0 && n < tokens.length ? n : undefined;
  };
  const bos = id("tokenizer.ggml.bos_token_id");
  const eos = id("tokenizer.ggml.eos_token_id");
  const name = (i: number | undefined) => (i === undefined ? null : tokens[i]!);
  if (model === "llama") {
    const scores = g.get("tokenizer.ggml.scores") as ArrayLike<number> | undefined;
    if (!scores) throw new FileFormatError(g.path, "tokenizer.ggml.scores is missing");
    if (g.bool("tokenizer.ggml.add_space_prefix", true) === false) {
      throw new FileFormatError(g.path, "SentencePiece vocab without add_space_prefix is not supported");
    }
    const unk = id("tokenizer.ggml.unknown_token_id") ?? 0;
    const addBos = g.bool("tokenizer.ggml.add_bos_token", true);
    const v: SpmVocab = { tokens, scores, bos: bos ?? 1, eos: eos ?? 2, unk, addBos };
    if (types) v.types = types;
    const tokenizer = spmTokenizerJson(v);
    const config = tokenizerConfigJson({
      bosToken: name(bos),
      eosToken: name(eos),
      unkToken: name(unk),
      addBosToken: addBos,
      addEosToken: g.bool("tokenizer.ggml.add_eos_token", false),
      tokenizerClass: "LlamaTokenizer",
    });
    return { tokenizer, config };
  }
  if (model === "gpt2") {
    const pre = g.string("tokenizer.ggml.pre", "gpt-2");
    if (pre !== "gpt-2" && pre !== "default") {
      throw new FileFormatError(
        g.path,
        `GGUF BPE pre-tokenizer ${JSON.stringify(pre)} is not supported (only "gpt-2")`,
      );
    }
    const merges = g.strings("tokenizer.ggml.merges");
    const specialIds: number[] = [];
    if (types) {
      for (let i = 0; i < tokens.length; i++) if (types[i] === TokenType.CONTROL) specialIds.push(i);
    }
    for (const i of [bos, eos]) if (i !== undefined && !specialIds.includes(i)) specialIds.push(i);
    specialIds.sort((a, b) => a - b);
    const tokenizer = gpt2TokenizerJson({ tokens, merges, specialIds });
    const config = tokenizerConfigJson({
      bosToken: name(bos),
      eosToken: name(eos),
      unkToken: name(eos),
      addBosToken: g.bool("tokenizer.ggml.add_bos_token", false),
      tokenizerClass: "GPT2Tokenizer",
    });
    return { tokenizer, config };
  }
  throw new FileFormatError(
    g.path,
    `GGUF tokenizer model ${JSON.stringify(model)} is not supported (only "llama" and "gpt2")`,
  );
}
