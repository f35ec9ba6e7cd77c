/**
 * tokenizer.ggml.* metadata for `lora-ts export gguf`, so llama.cpp tokenizes exactly as lora-ts
 * (tokenizer.json through @huggingface/tokenizers) does. llama.cpp does not read tokenizer.json: it
 * picks a hard-coded pre-tokenizer by the name in tokenizer.ggml.pre. So the pre-tokenizer is
 * recognised here, by structure and by exact regex string, as one of the families whose llama.cpp
 * implementation splits as HF does; anything else is refused in one line rather than exported with a
 * pre-tokenizer that would split text differently.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type GgufMeta, meta } from "../io/gguf-write.js";
import { LoraTsError } from "../util/errors.js";
import type { ModelConfig } from "./config.js";

type Json = Record<string, unknown>;

export function readJson(path: string, required: boolean): Json | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new LoraTsError(`${path}: cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new LoraTsError(`${path}: not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
}

/** llama.cpp's token types (llama_token_type / GGUF tokenizer.ggml.token_type). */
const TT = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export const tokenText = (t: unknown): string | null =>
  typeof t === "string"
    ? t
    : t && typeof (t as Json)["content"] === "string"
      ? ((t as Json)["content"] as string)
      : null;

/**
 * The Split regexes of the byte-level BPE families, exactly as their tokenizer.json files hold them.
 * Llama-3 groups digits by up to 3, Qwen2 splits every digit; otherwise the two are the same.
 */
export const LLAMA3_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** What the byte-level families' error message lists. */
const SUPPORTED =
  "GPT-2 (ByteLevel with its regex), Llama-3 and Qwen2 (Split with their regex + ByteLevel), SmolLM/StarCoder (Digits individual + ByteLevel), and SentencePiece-BPE with byte fallback";

const byteLevel = (p: Json | undefined, useRegex: boolean): boolean =>
  p?.["type"] === "ByteLevel" && p["add_prefix_space"] !== true && (p["use_regex"] !== false) === useRegex;

/**
 * llama.cpp's tokenizer.ggml.pre for a byte-level BPE pre_tokenizer, or null when none of llama.cpp's
 * implementations splits as it does:
 * - "gpt-2": ByteLevel applying GPT-2's own regex;
 * - "llama-bpe" / "qwen2": Split(Isolated) by Llama-3's / Qwen2's regex, then ByteLevel without regex;
 * - "smollm": Digits(individual_digits) then ByteLevel with GPT-2's regex (SmolLM, SmolLM2, StarCoder:
 *   llama.cpp's converter names this "smollm" for SmolLM and splits it as "starcoder" does).
 */
export function bytePreName(pre: unknown): string | null {
  const p = pre as Json | null;
  if (p == null) return null;
  if (byteLevel(p, true)) return "gpt-2";
  if (p["type"] !== "Sequence" || !Array.isArray(p["pretokenizers"])) return null;
  const [a, b, ...rest] = p["pretokenizers"] as Json[];
  if (rest.length > 0 || a === undefined || b === undefined) return null;
  if (a["type"] === "Digits" && a["individual_digits"] === true && byteLevel(b, true)) return "smollm";
  if (a["type"] !== "Split" || a["behavior"] !== "Isolated" || a["invert"] === true) return null;
  if (!byteLevel(b, false)) return null;
  const regex = (a["pattern"] as Json | undefined)?.["Regex"];
  if (regex === LLAMA3_SPLIT_REGEX) return "llama-bpe";
  if (regex === QWEN2_SPLIT_REGEX) return "qwen2";
  return null;
}

/** A SentencePiece-BPE tokenizer.json (Llama 2, io/tokenizer-json.ts spmTokenizerJson): byte fallback and "▁". */
function isSpm(tj: Json, model: Json): boolean {
  const norm = JSON.stringify(tj["normalizer"] ?? null);
  return (
    model["byte_fallback"] === true &&
    norm.includes('"Prepend"') &&
    norm.includes("▁") &&
    tj["pre_tokenizer"] == null
  );
}

/** The special tokens a TemplateProcessing post-processor puts around a single text: [first, last]. */
function templateEnds(pp: unknown): [string | null, string | null] {
  const p = pp as Json | null;
  if (p == null) return [null, null];
  if (p["type"] === "Sequence" && Array.isArray(p["processors"])) {
    for (const q of p["processors"] as Json[]) {
      const r = templateEnds(q);
      if (r[0] !== null || r[1] !== null) return r;
    }
    return [null, null];
  }
  if (p["type"] !== "TemplateProcessing" || !Array.isArray(p["single"])) return [null, null];
  const single = p["single"] as Json[];
  const special = (x: Json | undefined) =>
    ((x?.["SpecialToken"] as Json | undefined)?.["id"] as string) ?? null;
  return [special(single[0]), special(single.at(-1))];
}

/**
 * tokenizer.ggml.* metadata from tokenizer.json + tokenizer_config.json, for the kinds lora-ts
 * tokenizes and llama.cpp splits the same way: byte-level BPE (model "gpt2", pre as bytePreName says:
 * tokens, merges) and SentencePiece-BPE with byte fallback (model "llama": tokens, scores).
 * llama.cpp's SPM merges the adjacent pair whose joined piece scores highest, HF's BPE the pair of
 * lowest merge rank; a piece's score is therefore minus the rank of its first merge, which makes the
 * two pick the same pairs. Added tokens are control tokens (3) when special, else user-defined (4).
 * The vocabulary is padded to vocab_size with unused "[PAD<i>]" tokens (llama.cpp needs one token
 * per embedding row). Any other tokenizer is refused in one line.
 */
export function ggufTokenizerMetadata(dir: string, cfg: ModelConfig): GgufMeta[] {
  const tjPath = join(dir, "tokenizer.json");
  const tj = readJson(tjPath, true)!;
  const tc = readJson(join(dir, "tokenizer_config.json"), false) ?? {};
  const model = (tj["model"] ?? {}) as Json;
  if (model["type"] !== "BPE") {
    throw new LoraTsError(
      `${tjPath}: tokenizer model ${String(model["type"])} cannot be exported to GGUF (only BPE)`,
    );
  }
  const vocab = (model["vocab"] ?? {}) as Record<string, number>;
  const added = Array.isArray(tj["added_tokens"]) ? (tj["added_tokens"] as Json[]) : [];
  // llama.cpp strips around added tokens only for a few it knows by name: these flags would be lost.
  const stripped = added.find(
    (a) => a["lstrip"] === true || a["rstrip"] === true || a["single_word"] === true,
  );
  if (stripped) {
    throw new LoraTsError(
      `${tjPath}: added token ${JSON.stringify(stripped["content"])} has lstrip/rstrip/single_word, which a GGUF cannot carry`,
    );
  }
  const size = Math.max(
    cfg.vocabSize,
    ...Object.values(vocab).map((i) => i + 1),
    ...added.map((a) => (a["id"] as number) + 1),
  );
  if (size > cfg.vocabSize) {
    throw new LoraTsError(`${tjPath}: ${size} tokens, more than the model's vocab_size ${cfg.vocabSize}`);
  }
  const tokens: (string | null)[] = new Array(size).fill(null);
  const types = new Int32Array(size).fill(TT.NORMAL);
  for (const [t, i] of Object.entries(vocab)) tokens[i] = t;
  for (const a of added) {
    const i = a["id"] as number;
    tokens[i] = a["content"] as string;
    types[i] = a["special"] === true ? TT.CONTROL : TT.USER_DEFINED;
  }
  for (let i = 0; i < size; i++) {
    if (tokens[i] === null) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TT.UNUSED;
    }
  }
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!ids.has(t!)) ids.set(t!, i);
  });
  const rawMerges = (model["merges"] ?? []) as (string | [string, string])[];
  const merges = rawMerges.map((m) => (typeof m === "string" ? m : `${m[0]} ${m[1]}`));
  const out: GgufMeta[] = [];
  const spm = isSpm(tj, model);
  if (spm) {
    out.push(meta.str("tokenizer.ggml.model", "llama"), meta.str("tokenizer.ggml.pre", "default"));
    const scores = new Float32Array(size).fill(-1e9);
    for (let i = 0; i < size; i++)
      if (/^<0x[0-9A-F]{2}>$/.test(tokens[i]!) && types[i] === TT.NORMAL) types[i] = TT.BYTE;
    const unk = ids.get(String(model["unk_token"] ?? ""));
    if (unk !== undefined) types[unk] = TT.UNKNOWN;
    rawMerges.forEach((m, rank) => {
      const [l, r] = typeof m === "string" ? m.split(" ") : m;
      const id = ids.get(`${l}${r}`);
      if (id !== undefined && scores[id]! < -rank) scores[id] = -rank;
    });
    out.push(
      meta.strs("tokenizer.ggml.tokens", tokens as string[]),
      meta.f32s("tokenizer.ggml.scores", scores),
    );
    out.push(
      meta.i32s("tokenizer.ggml.token_type", types),
      meta.bool("tokenizer.ggml.add_space_prefix", true),
    );
    if (unk !== undefined) out.push(meta.u32("tokenizer.ggml.unknown_token_id", unk));
  } else {
    out.push(
      meta.str("tokenizer.ggml.model", "gpt2"),
      meta.str("tokenizer.ggml.pre", byteLevelPre(tjPath, tj, model)),
    );
    out.push(
      meta.strs("tokenizer.ggml.tokens", tokens as string[]),
      meta.i32s("tokenizer.ggml.token_type", types),
    );
    out.push(meta.strs("tokenizer.ggml.merges", merges));
  }
  const idOf = (key: string): number | undefined => {
    const t = tokenText(tc[key]);
    return t === null ? undefined : ids.get(t);
  };
  const bos = idOf("bos_token") ?? cfg.bosTokenId ?? undefined;
  const eos = idOf("eos_token") ?? cfg.eosTokenIds[0];
  const pad = idOf("pad_token");
  if (bos !== undefined) out.push(meta.u32("tokenizer.ggml.bos_token_id", bos));
  if (eos !== undefined) out.push(meta.u32("tokenizer.ggml.eos_token_id", eos));
  if (pad !== undefined) out.push(meta.u32("tokenizer.ggml.padding_token_id", pad));
  // What lora-ts adds around a text: tokenizer_config's add_bos_token / add_eos_token, else the
  // post-processor's template (Llama-3's puts <|begin_of_text|> first; SPM's a BOS).
  const [first, last] = templateEnds(tj["post_processor"]);
  const addBos =
    typeof tc["add_bos_token"] === "boolean"
      ? tc["add_bos_token"]
      : first !== null || (spm && tj["post_processor"] != null);
  const addEos =
    typeof tc["add_eos_token"] === "boolean" ? tc["add_eos_token"] : last !== null && last !== first;
  out.push(
    meta.bool("tokenizer.ggml.add_bos_token", addBos),
    meta.bool("tokenizer.ggml.add_eos_token", addEos),
  );
  if (typeof tc["chat_template"] === "string")
    out.push(meta.str("tokenizer.chat_template", tc["chat_template"]));
  return out;
}

/**
 * tokenizer.ggml.pre for a byte-level BPE tokenizer.json, or a one-line refusal. Besides the split,
 * llama.cpp fixes per pre name whether a word found whole in the vocabulary skips the merges
 * (llama-bpe: yes, as Llama-3's ignore_merges; the others: no), so that must agree too. Qwen2's NFC
 * normalizer is accepted: llama.cpp does not normalize, which changes nothing on text already in NFC.
 */
function byteLevelPre(tjPath: string, tj: Json, model: Json): string {
  const pre = bytePreName(tj["pre_tokenizer"]);
  const norm = tj["normalizer"] as Json | null | undefined;
  const refuse = (why: string) =>
    new LoraTsError(`${tjPath}: ${why}; GGUF export supports the tokenizers of ${SUPPORTED}`);
  if (pre === null) throw refuse("this pre-tokenizer is not one llama.cpp implements");
  if (model["byte_fallback"] === true) throw refuse("byte-level BPE with byte_fallback");
  if (norm != null && !(pre === "qwen2" && norm["type"] === "NFC")) {
    throw refuse(`normalizer ${String(norm["type"])} with pre-tokenizer ${pre}`);
  }
  if ((model["ignore_merges"] === true) !== (pre === "llama-bpe")) {
    throw refuse(
      `ignore_merges ${model["ignore_merges"] === true} with pre-tokenizer ${pre} (llama.cpp uses ${pre === "llama-bpe"})`,
    );
  }
  return pre;
}
