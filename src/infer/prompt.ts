/** A prompt's text as token ids, the one way `lora-ts generate --prompt`, the server and the web page encode it. */
import type { Tokenizer } from "../data/tokenizer.js";

/** BOS is prepended only when tokenizer_config.json's add_bos_token says so (Hugging Face's rule). */
export function encodePrompt(
  tokenizer: Tokenizer,
  tokenizerConfig: Record<string, unknown> | null,
  text: string,
): number[] {
  return tokenizer.encode(text, { addBos: tokenizerConfig?.["add_bos_token"] === true });
}
