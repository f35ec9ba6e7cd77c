import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ALPACA_PROMPT,
  alpacaPrompt,
  buildExamples,
  countTrainedTargets,
  describeData,
  IGNORE_INDEX,
  maxLengthFor,
} from "../../src/data/examples.js";
import { parseDataset } from "../../src/data/formats.js";
import { pieces, toyTokenizer } from "./toy-tokenizer.js";

const tok = toyTokenizer(); // add_bos_token true, BOS <s> = 1, EOS </s> = 2
const _ = IGNORE_INDEX;

function one(jsonl: string, opts: { maxLength?: number; trainOnInputs?: boolean } = {}) {
  const { examples, stats } = buildExamples(parseDataset(jsonl, "d.jsonl"), tok, {
    maxLength: opts.maxLength ?? 64,
    trainOnInputs: opts.trainOnInputs ?? false,
  });
  assert.equal(examples.length, 1);
  return { ex: examples[0]!, stats };
}

test("text rows: BOS + text + EOS, every token but BOS trained", () => {
  const { ex, stats } = one('{"text":"Once upon a time"}');
  assert.deepEqual(pieces(tok, ex.inputIds), ["<s>", "▁Once", "▁upon", "▁a", "▁time", "</s>"]);
  const ids = ex.inputIds;
  assert.deepEqual(ex.labels, [_, ids[1], ids[2], ids[3], ids[4], 2]);
  assert.equal(stats.trainedTokens, 5);
  assert.equal(countTrainedTargets(ex.labels), 5);
});

test("prompt/completion: loss on the completion and EOS only, unless trainOnInputs", () => {
  const row = '{"prompt":"Hi","completion":" Hello there"}';
  const { ex } = one(row);
  assert.deepEqual(pieces(tok, ex.inputIds), ["<s>", "▁Hi", "▁Hello", "▁there", "</s>"]);
  assert.deepEqual(ex.labels, [_, _, ex.inputIds[2], ex.inputIds[3], 2]);
  const all = one(row, { trainOnInputs: true }).ex;
  assert.deepEqual(all.inputIds, ex.inputIds);
  assert.deepEqual(all.labels, [_, ex.inputIds[1], ex.inputIds[2], ex.inputIds[3], 2]);
});

test("Alpaca rows use the documented prompt; loss on the output and EOS only", () => {
  assert.equal(
    alpacaPrompt("Add", "2 2"),
    "Below is an instruction that describes a task, paired with an input that provides further context. " +
      "Write a response that appropriately completes the request.\n\n### Instruction:\nAdd\n\n### Input:\n2 2\n\n### Response:\n",
  );
  assert.equal(
    alpacaPrompt("Say $1 & $&", ""),
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
      "### Instruction:\nSay $1 & $&\n\n### Response:\n",
  );
  assert.ok(ALPACA_PROMPT.includes("{instruction}") && ALPACA_PROMPT.includes("{input}"));
  const { ex } = one('{"instruction":"Hi","input":"","output":"Hello there"}', { maxLength: 512 });
  const trained = ex.inputIds.filter((_id, i) => ex.labels[i] !== IGNORE_INDEX);
  const prompt = ex.inputIds.filter((_id, i) => ex.labels[i] === IGNORE_INDEX);
  assert.equal(prompt[0], tok.bosId);
  assert.equal(tok.decode(prompt.slice(1)), alpacaPrompt("Hi", ""));
  assert.deepEqual(pieces(tok, trained), ["Hello", "▁there", "</s>"]);
  // the trained part is the tail of the example
  assert.deepEqual(ex.inputIds.slice(-3), trained);
});

test("chat rows: assistant turns (+ EOS) only; Alpaca rows can go through the chat template", () => {
  const { ex } = one('{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}');
  const trained = ex.inputIds.filter((_id, i) => ex.labels[i] !== IGNORE_INDEX);
  assert.deepEqual(pieces(tok, trained), ["Hello", "<|im_end|>", "▁", "<0x0A>", "</s>"]);
  const viaChat = buildExamples(parseDataset('{"instruction":"Hi","output":"Hello"}', "d.jsonl"), tok, {
    maxLength: 64,
    alpacaAsChat: true,
  }).examples[0]!;
  assert.deepEqual(viaChat, ex);
  const short = buildExamples(parseDataset('{"instruction":"Hi","output":"Hello"}', "d.jsonl"), tok, {
    maxLength: 64,
    alpacaPrompts: { withInput: "{instruction} {input}:", noInput: "{instruction}:" },
  }).examples[0]!;
  assert.deepEqual(pieces(tok, short.inputIds), ["<s>", "▁Hi", "<0x3A>", "Hello", "</s>"]);
  assert.deepEqual(short.labels.slice(0, 3), [_, _, _]);
});

test("add_bos_token false: no BOS", () => {
  const noBos = toyTokenizer({ addBos: false });
  const { examples } = buildExamples(parseDataset('{"text":"Hello there"}', "d.jsonl"), noBos, {
    maxLength: 8,
  });
  assert.deepEqual(pieces(noBos, examples[0]!.inputIds), ["▁Hello", "▁there", "</s>"]);
  assert.deepEqual(examples[0]!.labels, examples[0]!.inputIds);
});

test("maxLength truncates; examples left with nothing to train are dropped and counted", () => {
  const data = parseDataset(
    ['{"prompt":"How are you","completion":" Fine thanks"}', '{"prompt":"Hi","completion":" Hello"}'].join(
      "\n",
    ),
    "d.jsonl",
  );
  // Row 0: <s> ▁How ▁are ▁you | ▁Fine ▁thanks </s>  → cut to 4: nothing trained → dropped.
  // Row 1: <s> ▁Hi | ▁Hello </s> → cut to 4: kept whole.
  const { examples, stats } = buildExamples(data, tok, { maxLength: 4 });
  assert.deepEqual(stats, { rows: 2, examples: 1, truncated: 1, dropped: 1, trainedTokens: 2 });
  assert.deepEqual(pieces(tok, examples[0]!.inputIds), ["<s>", "▁Hi", "▁Hello", "</s>"]);
  const cut = buildExamples(data, tok, { maxLength: 6 });
  assert.deepEqual(pieces(tok, cut.examples[0]!.inputIds), [
    "<s>",
    "▁How",
    "▁are",
    "▁you",
    "▁Fine",
    "▁thanks",
  ]);
  assert.deepEqual(cut.examples[0]!.labels.slice(4), cut.examples[0]!.inputIds.slice(4));
  assert.equal(cut.stats.truncated, 1);
});

test("the summary says what was kept, truncated and dropped, and why; all dropped by truncation is an error naming --max-length (issue #12)", () => {
  const long = "Once upon a time ".repeat(6).trim();
  const rows = [0, 1, 2, 3, 4, 5].map((i) =>
    JSON.stringify({ prompt: i % 2 === 0 ? "How are you" : long, completion: " Fine thanks" }),
  );
  const data = parseDataset(rows.join("\n"), "d.jsonl");
  const { examples, summary } = buildExamples(data, tok, { maxLength: 16 });
  assert.equal(examples.length, 3);
  assert.deepEqual(summary, {
    rows: 6,
    examples: 3,
    truncated: 3,
    dropped: 3,
    trainedTokens: 9,
    path: "d.jsonl",
    maxLength: 16,
    droppedByTruncation: 3,
  });
  assert.equal(
    describeData(summary),
    "6 rows -> 3 examples (3 truncated to --max-length 16; 3 dropped: nothing left to train after truncation)",
  );
  // Nothing cut, nothing dropped: just the counts.
  const whole = buildExamples(data, tok, { maxLength: 64 });
  assert.equal(describeData(whole.summary), "6 rows -> 6 examples");
  // Truncated but kept; dropped with nothing to train at all (a chat with no assistant turn).
  const chat = parseDataset(
    [
      '{"messages":[{"role":"user","content":"Hi"}]}',
      '{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Once upon a time The end"}]}',
    ].join("\n"),
    "c.jsonl",
  );
  const full = buildExamples(chat, tok, { maxLength: 64 });
  assert.equal(describeData(full.summary), "2 rows -> 1 example (1 dropped: no token to train)");
  const cutTo = full.examples[0]!.inputIds.length - 1;
  const mixed = buildExamples(chat, tok, { maxLength: cutTo });
  assert.equal(mixed.summary.droppedByTruncation, 0);
  assert.equal(
    describeData(mixed.summary),
    `2 rows -> 1 example (1 truncated to --max-length ${cutTo}; 1 dropped: no token to train)`,
  );
  // Every example dropped by truncation: an error naming the file and --max-length.
  const allLong = parseDataset(rows.filter((_, i) => i % 2 === 1).join("\n"), "long.jsonl");
  assert.throws(
    () => buildExamples(allLong, tok, { maxLength: 16 }),
    (e: Error) =>
      e.message ===
      "long.jsonl: all 3 examples were dropped: 3 had nothing left to train after truncation to --max-length 16",
  );
});

test("maxLengthFor: a --max-length above the model's context is an error naming --max-length; the default is capped", () => {
  assert.equal(maxLengthFor(undefined, 128, 512), 128);
  assert.equal(maxLengthFor(undefined, 1024, 512), 512);
  assert.equal(maxLengthFor(128, 128, 512), 128);
  assert.equal(maxLengthFor(16, 128, 512), 16);
  assert.throws(
    () => maxLengthFor(129, 128, 512),
    /^LoraTsError: --max-length 129: longer than the model's context of 128 tokens \(max_position_embeddings\)$/,
  );
});

test("a plain-text file is tokenized whole and cut into maxLength windows, all trained", () => {
  const data = parseDataset("Once upon a time\nThe end", "book.txt");
  const { examples, stats } = buildExamples(data, tok, { maxLength: 3 });
  // <s> ▁Once ▁upon ▁a ▁time <0x0A> The ▁end → windows of 3; no EOS.
  assert.deepEqual(
    examples.map((e) => pieces(tok, e.inputIds)),
    [
      ["<s>", "▁Once", "▁upon"],
      ["▁a", "▁time", "<0x0A>"],
      ["The", "▁end"],
    ],
  );
  assert.deepEqual(examples[0]!.labels, [_, ...examples[0]!.inputIds.slice(1)]);
  assert.deepEqual(examples[1]!.labels, examples[1]!.inputIds);
  assert.equal(stats.truncated, 0);
  // a final window of a single token is dropped (nothing to predict)
  const odd = buildExamples(parseDataset("Once upon a time The", "b.txt"), tok, { maxLength: 5 });
  assert.deepEqual(
    odd.examples.map((e) => e.inputIds.length),
    [5],
  );
});

test("errors in a row name the file and the row", () => {
  const data = parseDataset('{"messages":[{"role":"user","content":"Hi"}]}', "d.jsonl");
  const tpl = "{{ raise_exception('no') }}";
  assert.throws(
    () => buildExamples(data, toyTokenizer({ chatTemplate: tpl }), { maxLength: 8 }),
    /^LoraTsError: d\.jsonl: row 0: chat template failed to render: .*no/,
  );
  assert.throws(() => buildExamples(data, tok, { maxLength: 1 }), /maxLength must be an integer ≥ 2/);
});
