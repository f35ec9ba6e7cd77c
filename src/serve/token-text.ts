/**
 * Token strings and bytes for logprobs. A token's string is its own decoding (special tokens shown);
 * its bytes are the UTF-8 of that string, or, for a token that holds only part of a character
 * (decoded as U+FFFD), its raw bytes where the vocabulary tells them: byte-level BPE symbols (GPT-2's
 * byte-to-unicode table) or SentencePiece byte tokens `<0xNN>`.
 */
import type { Tokenizer } from "../data/tokenizer.js";
import type { TokenText } from "./openai-format.js";

/** GPT-2's bytes_to_unicode, inverted: the symbol's code point → the byte. */
function byteLevelTable(): Map<string, number> {
  const m = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    m.set(String.fromCodePoint(printable ? b : 256 + extra++), b);
  }
  return m;
}

export function tokenText(tok: Tokenizer): TokenText {
  const decoder = tok.tokenizerJson["decoder"] as { type?: unknown } | undefined;
  const byteLevel = decoder?.type === "ByteLevel" ? byteLevelTable() : null;
  const texts = new Map<number, string>();
  const text = (id: number) => {
    let s = texts.get(id);
    if (s === undefined) {
      s = tok.decode([id]);
      texts.set(id, s);
    }
    return s;
  };
  return {
    text,
    bytes(id) {
      const s = text(id);
      if (!s.includes("\uFFFD")) return [...Buffer.from(s, "utf8")];
      const sym = tok.idToToken(id) ?? "";
      const byteToken = /^<0x([0-9A-Fa-f]{2})>$/.exec(sym);
      if (byteToken) return [Number.parseInt(byteToken[1]!, 16)];
      if (byteLevel && [...sym].every((c) => byteLevel.has(c))) return [...sym].map((c) => byteLevel.get(c)!);
      return [...Buffer.from(s, "utf8")];
    },
  };
}
