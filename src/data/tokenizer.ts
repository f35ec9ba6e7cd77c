/**
 * Tokenizers. The on-disk contract is Hugging Face's `tokenizer.json` (+ `tokenizer_config.json`);
 * encoding and decoding are done by the maintained pure-JS package @huggingface/tokenizers.
 * The builders that turn other vocabularies (GGUF metadata, llama2.c's tokenizer.bin, a trained
 * BPE) into tokenizer.json objects live next to those file readers, in io/tokenizer-json.ts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { FileFormatError, LoraTsError } from "../util/errors.js";

/** A parsed tokenizer.json / tokenizer_config.json (plain JSON object). */
export type JsonObject = Record<string, unknown>;

export interface EncodeOptions {
  /**
   * true: prepend BOS (and nothing else); false: no special tokens at all; undefined: whatever the
   * tokenizer.json post-processor adds (HF's `add_special_tokens=True`).
   */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, ...) from the output. */
  skipSpecial?: boolean;
}

function tokenContent(t: unknown): string | undefined {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as { content?: unknown }).content === "string") {
    return (t as { content: string }).content;
  }
  return undefined;
}

export class Tokenizer {
  /** Id of the BOS token (tokenizer_config's bos_token), if any. */
  readonly bosId: number | undefined;
  /** Id of the EOS token (tokenizer_config's eos_token), if any. */
  readonly eosId: number | undefined;
  /** 1 + the largest id of the vocabulary and the added tokens. */
  readonly vocabSize: number;

  private constructor(
    private readonly hf: HfTokenizer,
    readonly tokenizerJson: JsonObject,
    readonly tokenizerConfig: JsonObject,
  ) {
    const id = (key: string) => {
      const c = tokenContent(tokenizerConfig[key]);
      return c === undefined ? undefined : hf.token_to_id(c);
    };
    this.bosId = id("bos_token");
    this.eosId = id("eos_token");
    let max = -1;
    for (const v of hf.get_vocab(true).values()) if (v > max) max = v;
    this.vocabSize = max + 1;
  }

  /** From parsed tokenizer.json and tokenizer_config.json objects. */
  static fromJSON(tokenizerJson: JsonObject, tokenizerConfig: JsonObject = {}): Tokenizer {
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new LoraTsError(`unsupported tokenizer.json: ${(e as Error).message}`);
    }
    return new Tokenizer(hf, tokenizerJson, tokenizerConfig);
  }

  /** From a directory holding tokenizer.json and (optionally) tokenizer_config.json. */
  static fromDir(dir: string): Tokenizer {
    const read = (name: string, required: boolean): JsonObject | undefined => {
      const p = join(dir, name);
      let text: string;
      try {
        text = readFileSync(p, "utf8");
      } catch (e) {
        if (!required && (e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new FileFormatError(p, `cannot read: ${(e as Error).message}`);
      }
      try {
        return JSON.parse(text) as JsonObject;
      } catch (e) {
        throw new FileFormatError(p, `invalid JSON: ${(e as Error).message}`);
      }
    };
    const json = read("tokenizer.json", true)!;
    const config = read("tokenizer_config.json", false) ?? {};
    try {
      return Tokenizer.fromJSON(json, config);
    } catch (e) {
      throw new FileFormatError(join(dir, "tokenizer.json"), (e as Error).message);
    }
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (options.addBos === undefined) return this.hf.encode(text, { add_special_tokens: true }).ids;
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    if (options.addBos) {
      if (this.bosId === undefined) throw new LoraTsError("addBos: this tokenizer has no bos_token");
      ids.unshift(this.bosId);
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    return this.hf.decode(Array.from(ids), { skip_special_tokens: options.skipSpecial ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}
