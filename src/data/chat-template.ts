/**
 * Chat templates and the assistant-only loss mask.
 *
 * Rendering: the model's `chat_template` from tokenizer_config.json (a string, or a list of
 * `{name, template}` of which "default" is used) is rendered by @huggingface/jinja with the variables
 * Hugging Face's apply_chat_template passes: `messages`, `add_generation_prompt`, and the special
 * token strings `bos_token`, `eos_token`, `unk_token`, `pad_token` (those the config names;
 * `bos_token` / `eos_token` are "" when it names none). `raise_exception` is built into the renderer;
 * `range` is bounded as Jinja's sandbox bounds it (MAX_RANGE), plus a budget over one rendering.
 *
 * Default: when the model has no chat_template, DEFAULT_CHAT_TEMPLATE is used — ChatML,
 * `<|im_start|>{role}\n{content}<|im_end|>\n` per message, and `<|im_start|>assistant\n` as the
 * generation prompt. On a tokenizer without ChatML special tokens the markers are tokenized as
 * ordinary text.
 *
 * Loss mask (tokenizeChat), rendered incrementally: for every assistant message i,
 *   P_i = render(messages[0..i), add_generation_prompt = true)    (the prompt the model will see)
 *   F_i = render(messages[0..i],  add_generation_prompt = false)  (the prompt plus its answer)
 * and the characters [len(P_i), len(F_i)) of the full rendering are that turn's trainable text
 * (the answer plus whatever the template closes the turn with, e.g. `<|im_end|>\n` or `</s>`).
 * This needs each P_i / F_i to be a string prefix of the full rendering; templates that render
 * earlier turns differently once later ones exist are rejected with an error (use trainOnInputs).
 * The full text is tokenized ONCE (tokenizeSegments) and the character spans are mapped to tokens:
 *  1. "prefix": each boundary's text prefix is tokenized on its own; if those ids are a prefix of the
 *     full text's ids (the usual case: templates end turns with special tokens or newlines), the
 *     boundary is that token count — exact.
 *  2. "offsets": otherwise every token gets a character span from incremental decoding
 *     (decode(ids[0..j]) against decode(ids)), mapped back onto the rendered text (allowing for
 *     spaces a SentencePiece dummy prefix adds), and a token is trainable when its span overlaps a
 *     trainable character range — a token straddling a boundary counts as trainable.
 * BOS: prepended when tokenizer_config's add_bos_token is true, unless the template already emitted
 * it. EOS: appended (trainable) after a conversation that ends with an assistant message, unless the
 * rendered text already ends with the eos_token string (ignoring trailing whitespace).
 */
import { Template } from "@huggingface/jinja";
import { LoraTsError } from "../util/errors.js";
import type { ChatMessage } from "./formats.js";
import type { Tokenizer } from "./tokenizer.js";

/** Label value for tokens that are not trained (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

/** ChatML (the default when the model has no chat_template). */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

function tokenString(t: unknown): string | undefined {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as { content?: unknown }).content === "string") {
    return (t as { content: string }).content;
  }
  return undefined;
}

/**
 * An error's message on one line: a template's raise_exception('...') text and the parser's messages
 * quote the template, whose line breaks (\r too) would split the error.
 */
function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*[\r\n]+\s*/g, " ");
}

/**
 * range() as Jinja's sandbox bounds it (jinja2.sandbox.MAX_RANGE), which Hugging Face renders chat
 * templates in: the template is the model's file, and `range(10**8)` would otherwise build a
 * hundred-million-item list (a minute, then out of memory).
 */
export const MAX_RANGE = 100_000;
/** range() items over one rendering: loops nested over ranges stop here instead of running for hours. */
export const RANGE_BUDGET = 100_000;
/** The name `range` is renamed to in a parsed template, and bound to the bounded range on render. */
const BOUNDED_RANGE = "__lora_ts_bounded_range";

/**
 * Renames the variable `range` throughout a parsed template (not attribute or keyword names that
 * happen to be spelled so): @huggingface/jinja declares its own range() and refuses a second one.
 */
function renameRange(node: unknown, parent?: Record<string, unknown>, key?: string): void {
  if (typeof node !== "object" || node === null) return;
  if (Array.isArray(node)) {
    for (const n of node) renameRange(n, parent, key);
    return;
  }
  const n = node as Record<string, unknown>;
  const isName =
    !(parent?.["type"] === "MemberExpression" && key === "property" && parent["computed"] !== true) &&
    !(parent?.["type"] === "KeywordArgumentExpression" && key === "key");
  if (n["type"] === "Identifier" && n["value"] === "range" && isName) n["value"] = BOUNDED_RANGE;
  for (const [k, v] of Object.entries(n)) renameRange(v, n, k);
}

/** Python's range(start, stop, step), refusing more than MAX_RANGE items or RANGE_BUDGET in all. */
function boundedRange(): (start: number, stop?: number, step?: number) => number[] {
  let used = 0;
  return (start, stop, step = 1) => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error("range() step must not be zero");
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (!(n <= MAX_RANGE))
      throw new Error(`range() of ${n} items (at most ${MAX_RANGE}, as in Jinja's sandbox)`);
    used += n;
    if (used > RANGE_BUDGET) throw new Error(`range() calls of more than ${RANGE_BUDGET} items in all`);
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
}

/** The chat_template of a tokenizer_config.json object, if it has one. */
export function chatTemplateOf(tokenizerConfig: Record<string, unknown>): string | undefined {
  const t = tokenizerConfig["chat_template"];
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const d = named.find((x) => x && x.name === "default") ?? named[0];
    if (d && typeof d.template === "string") return d.template;
  }
  return undefined;
}

export class ChatTemplate {
  /** True when the model had no template and DEFAULT_CHAT_TEMPLATE is used. */
  readonly isDefault: boolean;
  readonly source: string;
  private readonly template: Template;

  /**
   * @param source Jinja source; undefined → DEFAULT_CHAT_TEMPLATE.
   * @param specialTokens token strings passed to the template (bos_token, eos_token, ...).
   */
  constructor(
    source: string | undefined,
    readonly specialTokens: Record<string, string> = {},
  ) {
    this.isDefault = source === undefined;
    this.source = source ?? DEFAULT_CHAT_TEMPLATE;
    try {
      this.template = new Template(this.source);
    } catch (e) {
      throw new LoraTsError(`cannot parse the chat template: ${oneLine(e)}`);
    }
    renameRange(this.template.parsed);
  }

  /** The tokenizer's chat_template (or `override`, or the default) with its special token strings. */
  static forTokenizer(tok: Tokenizer, override?: string): ChatTemplate {
    const cfg = tok.tokenizerConfig;
    const specials: Record<string, string> = { bos_token: "", eos_token: "" };
    for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
      const s = tokenString(cfg[k]);
      if (s !== undefined) specials[k] = s;
    }
    return new ChatTemplate(override ?? chatTemplateOf(cfg), specials);
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt = false): string {
    try {
      return this.template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt,
        [BOUNDED_RANGE]: boundedRange(),
      });
    } catch (e) {
      throw new LoraTsError(`chat template failed to render: ${oneLine(e)}`);
    }
  }
}

/** A piece of text and whether its tokens are trained. */
export interface Segment {
  text: string;
  train: boolean;
}

export interface TokenizedText {
  inputIds: number[];
  /** inputIds where trained, IGNORE_INDEX elsewhere (unshifted: HF's convention). */
  labels: number[];
  /** How token boundaries were found (see the module comment). */
  alignment: "prefix" | "offsets";
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/**
 * For each token of `ids`, its [start, end) character span in `text`, found by incremental decoding;
 * undefined when the decoded text cannot be aligned with `text`.
 */
function tokenSpans(tok: Tokenizer, ids: readonly number[], text: string): [number, number][] | undefined {
  const decoded = tok.decode(ids);
  // Map positions of `decoded` onto `text`: equal characters advance both; a space only in
  // `decoded` (a SentencePiece dummy prefix) or whitespace only in `text` is skipped.
  const toText = new Array<number>(decoded.length + 1);
  let i = 0;
  let k = 0;
  while (i < decoded.length) {
    if (k < text.length && decoded[i] === text[k]) {
      toText[i++] = k++;
    } else if (decoded[i] === " ") {
      toText[i++] = k;
    } else if (k < text.length && /\s/.test(text[k]!)) {
      k++;
    } else {
      return undefined;
    }
  }
  toText[decoded.length] = text.length;
  const spans: [number, number][] = [];
  let prev = 0;
  for (let j = 0; j < ids.length; j++) {
    const end =
      j === ids.length - 1 ? decoded.length : commonPrefixLength(tok.decode(ids.slice(0, j + 1)), decoded);
    const e = Math.max(prev, end);
    spans.push([toText[prev]!, toText[e]!]);
    prev = e;
  }
  return spans;
}

/**
 * Tokenizes the concatenation of `segments` once and labels each token by the segment it came from
 * (see the module comment for the two alignment methods). With `addBos`, BOS is prepended unless the
 * text already starts with it; BOS is never trained.
 */
export function tokenizeSegments(
  tok: Tokenizer,
  segments: readonly Segment[],
  options: {
    addBos?: boolean /** "offsets" skips the prefix method (tests). */;
    method?: "auto" | "offsets";
  } = {},
): TokenizedText {
  const text = segments.map((s) => s.text).join("");
  const ids = text === "" ? [] : tok.encode(text, { addBos: false });
  // Trainable character ranges, merged.
  const ranges: [number, number][] = [];
  let pos = 0;
  for (const s of segments) {
    const end = pos + s.text.length;
    if (s.train && end > pos) {
      const last = ranges.at(-1);
      if (last && last[1] === pos) last[1] = end;
      else ranges.push([pos, end]);
    }
    pos = end;
  }
  const labels = new Array<number>(ids.length).fill(IGNORE_INDEX);
  let alignment: "prefix" | "offsets" = options.method === "offsets" ? "offsets" : "prefix";
  const tokenAt = (charPos: number): number | undefined => {
    if (charPos === 0) return 0;
    if (charPos === text.length) return ids.length;
    const p = tok.encode(text.slice(0, charPos), { addBos: false });
    return isPrefix(p, ids) ? p.length : undefined;
  };
  const bounds: [number, number][] = [];
  for (const [a, b] of alignment === "prefix" ? ranges : []) {
    const ta = tokenAt(a);
    const tb = ta === undefined ? undefined : tokenAt(b);
    if (ta === undefined || tb === undefined) {
      alignment = "offsets";
      break;
    }
    bounds.push([ta, tb]);
  }
  if (alignment === "prefix") {
    for (const [ta, tb] of bounds) for (let j = ta; j < tb; j++) labels[j] = ids[j]!;
  } else {
    const spans = tokenSpans(tok, ids, text);
    if (!spans) {
      throw new LoraTsError(
        "cannot align tokens with the text for the loss mask (the tokenizer does not decode back to the text)",
      );
    }
    for (let j = 0; j < ids.length; j++) {
      const [s, e0] = spans[j]!;
      const e = Math.max(e0, s + 1); // a token that decodes to nothing belongs to the next character
      if (ranges.some(([a, b]) => s < b && e > a)) labels[j] = ids[j]!;
    }
  }
  if (options.addBos) {
    if (tok.bosId === undefined)
      throw new LoraTsError("add_bos_token is set but the tokenizer has no bos_token");
    if (ids[0] !== tok.bosId) {
      ids.unshift(tok.bosId);
      labels.unshift(IGNORE_INDEX);
    } else {
      labels[0] = IGNORE_INDEX;
    }
  }
  return { inputIds: ids, labels, alignment };
}

/** tokenizer_config's add_bos_token (default false, as for HF's fast tokenizers without it). */
export function addsBos(tok: Tokenizer): boolean {
  return tok.tokenizerConfig["add_bos_token"] === true;
}

export interface ChatTokenizeOptions {
  /** Train on every token (system/user turns and template text too), not just assistant turns. */
  trainOnInputs?: boolean;
  /** Prepend BOS; default tokenizer_config's add_bos_token. */
  addBos?: boolean;
  /** Append a trained EOS after a final assistant turn that lacks one; default true. */
  addEos?: boolean;
}

/** Renders a conversation and marks its assistant turns trainable (see the module comment). */
export function tokenizeChat(
  tok: Tokenizer,
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  options: ChatTokenizeOptions = {},
): TokenizedText {
  const full = template.render(messages, false);
  let segments: Segment[];
  if (options.trainOnInputs) {
    segments = [{ text: full, train: true }];
  } else {
    segments = [];
    let pos = 0;
    for (let i = 0; i < messages.length; i++) {
      if (messages[i]!.role !== "assistant") continue;
      let prompt: string;
      try {
        prompt = template.render(messages.slice(0, i), true);
      } catch (e) {
        if (i > 0) throw e;
        prompt = ""; // some templates cannot render an empty conversation
      }
      const withAnswer = template.render(messages.slice(0, i + 1), false);
      if (!full.startsWith(withAnswer) || !withAnswer.startsWith(prompt) || prompt.length < pos) {
        throw new LoraTsError(
          `the chat template does not render incrementally (the conversation up to message ${i} is not a ` +
            "prefix of the whole), so the assistant-only loss mask cannot be computed; use trainOnInputs",
        );
      }
      segments.push({ text: full.slice(pos, prompt.length), train: false });
      segments.push({ text: full.slice(prompt.length, withAnswer.length), train: true });
      pos = withAnswer.length;
    }
    segments.push({ text: full.slice(pos), train: false });
  }
  const out = tokenizeSegments(tok, segments, { addBos: options.addBos ?? addsBos(tok) });
  const eos = template.specialTokens["eos_token"];
  if (
    (options.addEos ?? true) &&
    messages.at(-1)?.role === "assistant" &&
    tok.eosId !== undefined &&
    !(eos && full.trimEnd().endsWith(eos))
  ) {
    out.inputIds.push(tok.eosId);
    out.labels.push(tok.eosId);
  }
  return out;
}
