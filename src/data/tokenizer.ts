/**
 * Tokenizers. The on-disk contract is Hugging Face's `tokenizer.json` (+ `tokenizer_config.json`);
 * encoding and decoding are done by the maintained pure-JS package @huggingface/tokenizers.
 * The builders that turn other vocabularies (GGUF metadata, llama2.c's tokenizer.bin, a trained
 * BPE) into tokenizer.json objects live next to those file readers, in io/tokenizer-json.ts.
 */
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { preview } from "../util/describe.js";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import { memoizeByteLevel } from "./byte-level-memo.js";

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

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A token id: an integer in [0, 2^31), as ids are fed to int64/int32 tensors and index arrays. */
const isId = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 31;

/** An error's message on one line (V8's JSON errors quote the text, line breaks included). */
function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*[\r\n]+\s*/g, " ");
}

/**
 * The ids in model.vocab and added_tokens must be token ids: the library takes any JSON value, and
 * a string id came back out of encode() and made decode() throw, a huge one made arrays that long.
 */
function checkIds(json: JsonObject): void {
  const bad = (where: string, id: unknown): never => {
    throw new LoraTsError(
      `unsupported tokenizer.json: ${where} has id ${preview(id)}, not an integer in [0, 2^31)`,
    );
  };
  const vocab = isObject(json["model"]) ? json["model"]["vocab"] : undefined;
  if (isObject(vocab)) {
    for (const [token, id] of Object.entries(vocab))
      if (!isId(id)) bad(`model.vocab token ${preview(token)}`, id);
  }
  const added = json["added_tokens"];
  if (Array.isArray(added)) {
    added.forEach((t: unknown, i) => {
      const id = isObject(t) ? t["id"] : undefined;
      if (!isId(id)) bad(`added_tokens[${i}]`, id);
    });
  }
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
    /** Where it came from, for messages: the tokenizer.json path, or "tokenizer.json". */
    readonly source: string,
  ) {
    const id = (key: string) => {
      const c = tokenContent(tokenizerConfig[key]);
      return c === undefined ? undefined : hf.token_to_id(c);
    };
    this.bosId = id("bos_token");
    this.eosId = id("eos_token");
    // Not get_vocab(): it walks every id up to the largest, so one corrupt id of 2^31 took minutes.
    // The model's id -> token array is as long as the largest id + 1.
    this.vocabSize = hf.model?.vocab.length ?? 0;
  }

  /** From parsed tokenizer.json and tokenizer_config.json objects. */
  static fromJSON(
    tokenizerJson: JsonObject,
    tokenizerConfig: JsonObject = {},
    source = "tokenizer.json",
  ): Tokenizer {
    checkIds(tokenizerJson);
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new LoraTsError(`unsupported tokenizer.json: ${oneLine(e)}`);
    }
    memoizeByteLevel(hf); // the same ids, over twice as fast on real text (see byte-level-memo.ts)
    return new Tokenizer(hf, tokenizerJson, tokenizerConfig, source);
  }

  /**
   * From tokenizer.json's text and tokenizer_config.json's (null when absent); `path` names
   * tokenizer.json in messages and `configPath` the config.
   */
  static fromTexts(
    tokenizerJson: string,
    tokenizerConfig: string | null,
    path: string,
    configPath: string,
  ): Tokenizer {
    const json = parseObject(tokenizerJson, path);
    const config = tokenizerConfig === null ? {} : parseObject(tokenizerConfig, configPath);
    try {
      return Tokenizer.fromJSON(json, config, path);
    } catch (e) {
      throw new FileFormatError(path, (e as Error).message);
    }
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (options.addBos === undefined)
      return this.library("encode", () => this.hf.encode(text, { add_special_tokens: true }).ids);
    const ids = this.library("encode", () => this.hf.encode(text, { add_special_tokens: false }).ids);
    if (options.addBos) {
      if (this.bosId === undefined) throw new LoraTsError("addBos: this tokenizer has no bos_token");
      ids.unshift(this.bosId);
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    const skip = options.skipSpecial ?? false;
    return this.library("decode", () => this.hf.decode(Array.from(ids), { skip_special_tokens: skip }));
  }

  /**
   * Runs a call into @huggingface/tokenizers. It checks little of tokenizer.json when loading, so a
   * corrupt part (a post-processor of the wrong shape, a bad regex flag) fails only here, as a
   * TypeError or a plain Error: that is the file's fault, reported as one line naming it.
   */
  private library<T>(what: string, call: () => T): T {
    try {
      return call();
    } catch (e) {
      if (e instanceof LoraTsError) throw e;
      throw new FileFormatError(
        this.source,
        `the tokenizer failed to ${what} (${oneLine(e)}): a corrupt or unsupported part?`,
      );
    }
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}

function parseObject(text: string, path: string): JsonObject {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(path, `invalid JSON: ${oneLine(e)}`);
  }
  if (!isObject(json)) throw new FileFormatError(path, "expected a JSON object");
  return json;
}
