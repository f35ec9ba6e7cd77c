/**
 * A tiny Llama-style SentencePiece-BPE tokenizer for the data tests: <unk> <s> </s>, the ChatML
 * markers <|im_start|> <|im_end|> and the Zephyr-style role markers as special tokens, the 256 byte
 * pieces, every character of WORDS and every prefix of each word (with and without "▁"), so each
 * word of WORDS becomes one token.
 */
import { Tokenizer } from "../../src/data/tokenizer.js";
import { spmTokenizerJson, TokenType, tokenizerConfigJson } from "../../src/io/tokenizer-json.js";

export const WORDS = [
  "user",
  "assistant",
  "system",
  "Hi",
  "Hello",
  "there",
  "How",
  "are",
  "you",
  "Fine",
  "thanks",
  "Be",
  "brief",
  "Once",
  "upon",
  "a",
  "time",
  "The",
  "end",
  "###",
  "Response",
];

export const SPECIALS = [
  "<unk>",
  "<s>",
  "</s>",
  "<|im_start|>",
  "<|im_end|>",
  "<|user|>",
  "<|assistant|>",
  "<|system|>",
];

export function toyTokenizer(
  config: { chatTemplate?: string; addBos?: boolean; padToken?: string } = {},
): Tokenizer {
  const tokens = [...SPECIALS];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const pieces = new Set<string>(["▁"]);
  for (const w of WORDS) {
    for (const c of w) pieces.add(c);
    for (const s of [w, `▁${w}`]) for (let k = 1; k <= s.length; k++) pieces.add(s.slice(0, k));
  }
  tokens.push(...pieces);
  const scores = tokens.map((_, i) => -i);
  const types = tokens.map((t, i) =>
    i === 0
      ? TokenType.UNKNOWN
      : i < SPECIALS.length
        ? TokenType.CONTROL
        : /^<0x/.test(t)
          ? TokenType.BYTE
          : TokenType.NORMAL,
  );
  const json = spmTokenizerJson({ tokens, scores, types, bos: 1, eos: 2, unk: 0, addBos: false });
  const cfg: Parameters<typeof tokenizerConfigJson>[0] = {
    bosToken: "<s>",
    eosToken: "</s>",
    unkToken: "<unk>",
    addBosToken: config.addBos ?? true,
  };
  if (config.chatTemplate !== undefined) cfg.chatTemplate = config.chatTemplate;
  if (config.padToken !== undefined) cfg.padToken = config.padToken;
  return Tokenizer.fromJSON(json, tokenizerConfigJson(cfg));
}

/** Token strings of ids. */
export function pieces(tok: Tokenizer, ids: readonly number[]): string[] {
  return ids.map((i) => tok.idToToken(i) ?? `#${i}`);
}
