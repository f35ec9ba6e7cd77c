/**
 * Rows → training examples `{ inputIds, labels }`.
 *
 * Labels follow Hugging Face's convention: the same length as inputIds, UNSHIFTED (the loss at
 * position t compares the logits at t with labels[t + 1]), IGNORE_INDEX (-100) where not trained.
 * BOS, when present, is never trained.
 *
 *  - document (a .txt file): the whole text is tokenized (BOS first if add_bos_token) and cut into
 *    consecutive maxLength windows, every token trained (like HF run_clm's group_texts, but the last,
 *    shorter window is kept when it has at least 2 tokens). No EOS.
 *  - text: [BOS] text EOS, all trained (EOS marks the end of a document, as TRL's SFTTrainer does).
 *  - prompt-completion: [BOS] prompt completion EOS; loss on completion + EOS only, unless
 *    trainOnInputs. The prompt and completion are joined with nothing in between.
 *  - alpaca: rendered with ALPACA_PROMPT (or ALPACA_PROMPT_NO_INPUT when input is ""), the
 *    Stanford Alpaca prompt format, followed by the output and EOS; loss on output + EOS only, unless
 *    trainOnInputs. With `alpacaAsChat`, the row becomes a chat instead (user: instruction, plus
 *    "\n\n" + input when there is one; assistant: output) rendered by the chat template; with
 *    `alpacaPrompts`, other prompt strings.
 *  - chat / ShareGPT: rendered with the chat template; loss on assistant turns only, unless
 *    trainOnInputs (see chat-template.ts).
 * BOS follows tokenizer_config's add_bos_token unless `addBos` says otherwise; EOS is the
 * tokenizer's eos_token (skipped when it has none). Longer examples are cut to maxLength tokens (right
 * truncation); an example left with no trained target (labels[1..] all -100) is dropped and counted,
 * and why (truncation, or nothing trained at all); describeData says so in one line.
 */
import { LoraTsError } from "../util/errors.js";
import {
  addsBos,
  ChatTemplate,
  IGNORE_INDEX,
  type Segment,
  type TokenizedText,
  tokenizeChat,
  tokenizeSegments,
} from "./chat-template.js";
import type { ChatMessage, DataFile, DataRow } from "./formats.js";
import type { Tokenizer } from "./tokenizer.js";

export { IGNORE_INDEX } from "./chat-template.js";

export interface Example {
  inputIds: number[];
  /** inputIds where trained, IGNORE_INDEX elsewhere; unshifted. */
  labels: number[];
}

/** The Stanford Alpaca prompt for rows with an input; `{instruction}` and `{input}` are filled in. */
export const ALPACA_PROMPT =
  "Below is an instruction that describes a task, paired with an input that provides further context. " +
  "Write a response that appropriately completes the request.\n\n" +
  "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";

/** The Stanford Alpaca prompt for rows without an input. */
export const ALPACA_PROMPT_NO_INPUT =
  "Below is an instruction that describes a task. " +
  "Write a response that appropriately completes the request.\n\n" +
  "### Instruction:\n{instruction}\n\n### Response:\n";

export interface ExampleOptions {
  /** Longest example in tokens (truncation; window size for plain-text documents). */
  maxLength: number;
  /** Train on prompts / user turns too. Default false. */
  trainOnInputs?: boolean;
  /** Prepend BOS; default tokenizer_config's add_bos_token. */
  addBos?: boolean;
  /** Chat template for chat rows; default ChatTemplate.forTokenizer(tok). */
  chatTemplate?: ChatTemplate;
  /** Render Alpaca rows through the chat template instead of ALPACA_PROMPT. Default false. */
  alpacaAsChat?: boolean;
  /**
   * Other Alpaca prompts (with `{instruction}` and `{input}` placeholders) instead of ALPACA_PROMPT /
   * ALPACA_PROMPT_NO_INPUT, e.g. a shorter one for a small-context model.
   */
  alpacaPrompts?: { withInput: string; noInput: string };
}

export interface ExampleStats {
  rows: number;
  examples: number;
  /** Examples cut to maxLength. */
  truncated: number;
  /** Examples dropped because nothing in them is trained (after truncation). */
  dropped: number;
  /** Trained targets over all examples (labels[1..] that are not IGNORE_INDEX). */
  trainedTokens: number;
}

/** What buildExamples made of a data set, for the one line the CLI prints (see describeData). */
export interface DataSummary extends ExampleStats {
  /** The data file, when the rows came from one. */
  path?: string;
  /** The length examples were cut to (--max-length, capped by the model's context). */
  maxLength: number;
  /** Of `dropped`: examples that had tokens to train until truncation cut them all off. */
  droppedByTruncation: number;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/**
 * One line: what was kept, truncated and dropped, and why, e.g.
 * `6 rows -> 3 examples (3 truncated to --max-length 16; 3 dropped: nothing left to train after truncation)`.
 */
export function describeData(d: DataSummary): string {
  const notes: string[] = [];
  if (d.truncated > 0) notes.push(`${d.truncated} truncated to --max-length ${d.maxLength}`);
  if (d.droppedByTruncation > 0)
    notes.push(`${d.droppedByTruncation} dropped: nothing left to train after truncation`);
  const untrained = d.dropped - d.droppedByTruncation;
  if (untrained > 0) notes.push(`${untrained} dropped: no token to train`);
  const head = `${plural(d.rows, "row", "rows")} -> ${plural(d.examples, "example", "examples")}`;
  return notes.length > 0 ? `${head} (${notes.join("; ")})` : head;
}

/**
 * The example length for a model with `context` positions: `given` (a --max-length the user set),
 * which may not exceed the context, else `fallback` capped by it.
 */
export function maxLengthFor(given: number | undefined, context: number, fallback: number): number {
  if (given === undefined) return Math.min(fallback, context);
  if (given > context) {
    throw new LoraTsError(
      `--max-length ${given}: longer than the model's context of ${context} tokens (max_position_embeddings)`,
    );
  }
  return given;
}

/** The Alpaca prompt for a row. */
export function alpacaPrompt(
  instruction: string,
  input: string,
  prompts: { withInput: string; noInput: string } = {
    withInput: ALPACA_PROMPT,
    noInput: ALPACA_PROMPT_NO_INPUT,
  },
): string {
  // Function replacers: "$" sequences in the data are not special.
  const t = input === "" ? prompts.noInput : prompts.withInput;
  return t.replace("{instruction}", () => instruction).replace("{input}", () => input);
}

/** Number of positions the loss scores: labels[1..] that are not IGNORE_INDEX. */
export function countTrainedTargets(labels: readonly number[]): number {
  let n = 0;
  for (let i = 1; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}

function withEos(tok: Tokenizer, t: TokenizedText): Example {
  if (tok.eosId !== undefined) {
    t.inputIds.push(tok.eosId);
    t.labels.push(tok.eosId);
  }
  return { inputIds: t.inputIds, labels: t.labels };
}

/**
 * One row → examples (one, or several windows for a plain-text document), before truncation.
 * Exposed for tests and for `lora-ts eval`; buildExamples adds truncation and statistics.
 */
export function rowToExamples(
  row: DataRow,
  tok: Tokenizer,
  options: ExampleOptions & { chatTemplate: ChatTemplate },
): Example[] {
  const addBos = options.addBos ?? addsBos(tok);
  const trainInputs = options.trainOnInputs ?? false;
  const promptAndAnswer = (prompt: string, answer: string): Example => {
    const segs: Segment[] = [
      { text: prompt, train: trainInputs },
      { text: answer, train: true },
    ];
    return withEos(tok, tokenizeSegments(tok, segs, { addBos }));
  };
  switch (row.kind) {
    case "document": {
      const ids = tokenizeSegments(tok, [{ text: row.text, train: true }], { addBos }).inputIds;
      const out: Example[] = [];
      for (let s = 0; s < ids.length; s += options.maxLength) {
        const w = ids.slice(s, s + options.maxLength);
        if (w.length < 2) break;
        out.push({ inputIds: w, labels: w.map((id, j) => (s + j === 0 && addBos ? IGNORE_INDEX : id)) });
      }
      return out;
    }
    case "text":
      return [withEos(tok, tokenizeSegments(tok, [{ text: row.text, train: true }], { addBos }))];
    case "prompt-completion":
      return [promptAndAnswer(row.prompt, row.completion)];
    case "alpaca": {
      if (options.alpacaAsChat) {
        const user = row.input === "" ? row.instruction : `${row.instruction}\n\n${row.input}`;
        const messages: ChatMessage[] = [
          { role: "user", content: user },
          { role: "assistant", content: row.output },
        ];
        const t = tokenizeChat(tok, options.chatTemplate, messages, { trainOnInputs: trainInputs, addBos });
        return [{ inputIds: t.inputIds, labels: t.labels }];
      }
      return [promptAndAnswer(alpacaPrompt(row.instruction, row.input, options.alpacaPrompts), row.output)];
    }
    case "chat": {
      const t = tokenizeChat(tok, options.chatTemplate, row.messages, { trainOnInputs: trainInputs, addBos });
      return [{ inputIds: t.inputIds, labels: t.labels }];
    }
  }
}

/**
 * Rows → truncated, counted examples, one row at a time: the one implementation of truncation, drop
 * reasons and statistics, shared by buildExamples (rows in memory) and the data preparation that
 * streams a file through worker threads (prepare-range.ts), whose shards' statistics are summed.
 */
export class ExampleBuilder {
  readonly stats: ExampleStats = { rows: 0, examples: 0, truncated: 0, dropped: 0, trainedTokens: 0 };
  /** Of stats.dropped: examples that had tokens to train until truncation cut them all off. */
  droppedByTruncation = 0;
  private readonly options: ExampleOptions & { chatTemplate: ChatTemplate };

  constructor(
    private readonly tok: Tokenizer,
    options: ExampleOptions,
  ) {
    if (!Number.isInteger(options.maxLength) || options.maxLength < 2) {
      throw new LoraTsError(`maxLength must be an integer ≥ 2, got ${options.maxLength}`);
    }
    this.options = { ...options, chatTemplate: options.chatTemplate ?? ChatTemplate.forTokenizer(tok) };
  }

  /**
   * One row → its kept examples (truncated to maxLength), counted. rowToExamples's errors go out as
   * they are; the caller names the file and the row.
   */
  add(row: DataRow): Example[] {
    const list = rowToExamples(row, this.tok, this.options);
    const { stats } = this;
    stats.rows++;
    const kept: Example[] = [];
    for (const ex of list) {
      let cut = false;
      if (ex.inputIds.length > this.options.maxLength) {
        cut = countTrainedTargets(ex.labels) > 0;
        ex.inputIds.length = this.options.maxLength;
        ex.labels.length = this.options.maxLength;
        stats.truncated++;
      }
      const n = countTrainedTargets(ex.labels);
      if (n === 0) {
        stats.dropped++;
        if (cut) this.droppedByTruncation++;
        continue;
      }
      stats.trainedTokens += n;
      stats.examples++;
      kept.push(ex);
    }
    return kept;
  }
}

/** The error for a row whose examples could not be made: `<file>: row <i>: <why>` (i 0-based). */
export function rowError(where: string, i: number, e: unknown): unknown {
  return e instanceof LoraTsError ? new LoraTsError(`${where}row ${i}: ${e.message}`) : e;
}

/**
 * The summary of a whole data set from its (summed) statistics. When examples were made but
 * truncation left none with a token to train, that is an error naming --max-length: nothing is
 * dropped without a word. `where` is "<file>: " or "".
 */
export function summarizeExamples(
  stats: ExampleStats,
  droppedByTruncation: number,
  maxLength: number,
  where: string,
  path?: string,
): DataSummary {
  if (stats.examples === 0 && droppedByTruncation > 0) {
    throw new LoraTsError(
      `${where}all ${plural(stats.dropped, "example was", "examples were")} dropped: ` +
        `${droppedByTruncation} had nothing left to train after truncation to --max-length ${maxLength}`,
    );
  }
  return { ...stats, ...(path !== undefined ? { path } : {}), maxLength, droppedByTruncation };
}

/**
 * Rows (or a parsed file) → truncated training examples, with statistics (`stats`) and a summary for
 * the user (`summary`, see describeData); see ExampleBuilder and summarizeExamples.
 */
export function buildExamples(
  data: DataFile | readonly DataRow[],
  tok: Tokenizer,
  options: ExampleOptions,
): { examples: Example[]; stats: ExampleStats; summary: DataSummary } {
  const builder = new ExampleBuilder(tok, options);
  const rows = "rows" in data ? data.rows : data;
  const where = "rows" in data ? `${data.path}: ` : "";
  const examples: Example[] = [];
  rows.forEach((row, i) => {
    let kept: Example[];
    try {
      kept = builder.add(row);
    } catch (e) {
      throw rowError(where, i, e);
    }
    for (const ex of kept) examples.push(ex);
  });
  const stats = { ...builder.stats, rows: rows.length };
  const summary = summarizeExamples(
    stats,
    builder.droppedByTruncation,
    options.maxLength,
    where,
    "rows" in data ? data.path : undefined,
  );
  return { examples, stats, summary };
}
