import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  ChatTemplate,
  DEFAULT_CHAT_TEMPLATE,
  IGNORE_INDEX,
  tokenizeChat,
  tokenizeSegments,
} from "../../src/data/chat-template.js";
import { type ChatMessage, parseDataset } from "../../src/data/formats.js";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { readLlama2cTokenizer } from "../../src/io/llama2c.js";
import { llama2cTokenizerJson, tokenizerConfigJson } from "../../src/io/tokenizer-json.js";
import { LoraTsError } from "../../src/util/errors.js";
import { SHARED } from "../helpers/shared.js";
import { pieces, toyTokenizer } from "./toy-tokenizer.js";

const shared = SHARED;
const tok512 = path.join(shared, "models/stories260K/tok512.bin");
const fastchat = path.join(shared, "data/fastchat_dummy_conversation.json");
const SKIP_SHARED = existsSync(tok512) && existsSync(fastchat) ? false : "needs ../shared (absent)";

const T = "T"; // trained
const _ = "-"; // not trained

/** [piece, T|-] for each token. */
function table(tok: Tokenizer, ids: number[], labels: number[]): [string, string][] {
  assert.equal(ids.length, labels.length);
  return pieces(tok, ids).map((p, i) => {
    if (labels[i] !== IGNORE_INDEX) assert.equal(labels[i], ids[i], "a trained label is its token");
    return [p, labels[i] === IGNORE_INDEX ? _ : T];
  });
}

const SHAREGPT_ROW =
  '{"id":"x","conversations":[{"from":"system","value":"Be brief"},{"from":"human","value":"Hi"},' +
  '{"from":"gpt","value":"Hello there"},{"from":"human","value":"How are you"},{"from":"gpt","value":"Fine thanks"}]}';

function sharegptMessages(): ChatMessage[] {
  const file = parseDataset(SHAREGPT_ROW, "chat.jsonl");
  assert.equal(file.format, "sharegpt");
  const row = file.rows[0]!;
  assert.equal(row.kind, "chat");
  return row.kind === "chat" ? row.messages : [];
}

test("a ShareGPT row through the default (ChatML) template: text, tokens and loss mask token by token", () => {
  const tok = toyTokenizer(); // its tokenizer_config has no chat_template
  const tpl = ChatTemplate.forTokenizer(tok);
  assert.equal(tpl.isDefault, true);
  assert.equal(tpl.source, DEFAULT_CHAT_TEMPLATE);
  const messages = sharegptMessages();
  assert.equal(
    tpl.render(messages),
    "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" +
      "<|im_start|>assistant\nHello there<|im_end|>\n<|im_start|>user\nHow are you<|im_end|>\n" +
      "<|im_start|>assistant\nFine thanks<|im_end|>\n",
  );
  assert.equal(
    tpl.render(messages.slice(0, 2), true),
    "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
  const r = tokenizeChat(tok, tpl, messages);
  assert.equal(r.alignment, "prefix");
  // The SentencePiece tokenizer adds its "▁" dummy prefix to the text after each special token
  // (Llama's legacy behaviour), hence "▁system" and the "▁" before each newline after <|im_end|>.
  // BOS comes from add_bos_token; the EOS at the end is appended (the template has none).
  const expected: [string, string][] = [
    ["<s>", _],
    ["<|im_start|>", _],
    ["▁system", _],
    ["<0x0A>", _],
    ["Be", _],
    ["▁brief", _],
    ["<|im_end|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["<|im_start|>", _],
    ["▁user", _],
    ["<0x0A>", _],
    ["Hi", _],
    ["<|im_end|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["<|im_start|>", _],
    ["▁assistant", _],
    ["<0x0A>", _],
    ["Hello", T],
    ["▁there", T],
    ["<|im_end|>", T],
    ["▁", T],
    ["<0x0A>", T],
    ["<|im_start|>", _],
    ["▁user", _],
    ["<0x0A>", _],
    ["How", _],
    ["▁are", _],
    ["▁you", _],
    ["<|im_end|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["<|im_start|>", _],
    ["▁assistant", _],
    ["<0x0A>", _],
    ["Fine", T],
    ["▁thanks", T],
    ["<|im_end|>", T],
    ["▁", T],
    ["<0x0A>", T],
    ["</s>", T],
  ];
  assert.deepEqual(table(tok, r.inputIds, r.labels), expected);

  // Character-offset alignment (the fallback) gives the same mask: the decoded text has a space
  // after each special token that the rendered text lacks, which the alignment allows for.
  const text = tpl.render(messages);
  const a1 = text.indexOf("Hello");
  const b1 = text.indexOf("<|im_start|>user", a1);
  const a2 = text.indexOf("Fine");
  const viaOffsets = tokenizeSegments(
    tok,
    [
      { text: text.slice(0, a1), train: false },
      { text: text.slice(a1, b1), train: true },
      { text: text.slice(b1, a2), train: false },
      { text: text.slice(a2), train: true },
    ],
    { addBos: true, method: "offsets" },
  );
  assert.equal(viaOffsets.alignment, "offsets");
  assert.deepEqual(viaOffsets.inputIds, r.inputIds.slice(0, -1));
  assert.deepEqual(viaOffsets.labels, r.labels.slice(0, -1));

  const all = tokenizeChat(tok, tpl, messages, { trainOnInputs: true });
  assert.deepEqual(all.inputIds, r.inputIds);
  assert.deepEqual(
    table(tok, all.inputIds, all.labels),
    expected.map(([p], i) => [p, i === 0 ? _ : T]),
    "trainOnInputs trains everything but BOS",
  );
});

test("a ShareGPT row through a model's own template (Zephyr-style, BOS and EOS in the template)", () => {
  const template =
    "{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}" +
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";
  const tok = toyTokenizer({ chatTemplate: template });
  const tpl = ChatTemplate.forTokenizer(tok);
  assert.equal(tpl.isDefault, false);
  const messages = sharegptMessages();
  assert.equal(
    tpl.render(messages),
    "<s><|system|>\nBe brief</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello there</s>\n" +
      "<|user|>\nHow are you</s>\n<|assistant|>\nFine thanks</s>\n",
  );
  const r = tokenizeChat(tok, tpl, messages);
  assert.equal(r.alignment, "prefix");
  // No second BOS (the template emitted it) and no extra EOS (the text already ends with "</s>\n").
  assert.deepEqual(table(tok, r.inputIds, r.labels), [
    ["<s>", _],
    ["<|system|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["Be", _],
    ["▁brief", _],
    ["</s>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["<|user|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["Hi", _],
    ["</s>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["<|assistant|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["Hello", T],
    ["▁there", T],
    ["</s>", T],
    ["▁", T],
    ["<0x0A>", T],
    ["<|user|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["How", _],
    ["▁are", _],
    ["▁you", _],
    ["</s>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["<|assistant|>", _],
    ["▁", _],
    ["<0x0A>", _],
    ["Fine", T],
    ["▁thanks", T],
    ["</s>", T],
    ["▁", T],
    ["<0x0A>", T],
  ]);
  // The offsets method agrees with the prefix method on this text.
  const text = tpl.render(messages);
  const starts = [text.indexOf("Hello"), text.indexOf("Fine")];
  const ends = [text.indexOf("<|user|>", starts[0]), text.length];
  const segs = [
    { text: text.slice(0, starts[0]), train: false },
    { text: text.slice(starts[0], ends[0]), train: true },
    { text: text.slice(ends[0], starts[1]), train: false },
    { text: text.slice(starts[1]), train: true },
  ];
  const viaOffsets = tokenizeSegments(tok, segs, { addBos: true, method: "offsets" });
  assert.equal(viaOffsets.alignment, "offsets");
  assert.deepEqual(viaOffsets.inputIds, r.inputIds);
  assert.deepEqual(viaOffsets.labels, r.labels);
});

test("offsets fallback when a boundary falls inside a token: the straddling token is trained", () => {
  const tok = toyTokenizer({ addBos: false });
  // "Hel" | "lo there": "Hel" alone is "▁Hel", not a prefix of the ids of "Hello there".
  const r = tokenizeSegments(tok, [
    { text: "Hel", train: false },
    { text: "lo there", train: true },
  ]);
  assert.equal(r.alignment, "offsets");
  assert.deepEqual(table(tok, r.inputIds, r.labels), [
    ["▁Hello", T],
    ["▁there", T],
  ]);
  const r2 = tokenizeSegments(tok, [
    { text: "Hello ", train: false },
    { text: "there", train: true },
  ]);
  assert.deepEqual(table(tok, r2.inputIds, r2.labels), [
    ["▁Hello", _],
    ["▁there", T],
  ]);
});

test("the chat_template of tokenizer_config is used, named templates too; bad templates are clear errors", () => {
  const named = toyTokenizer();
  (named.tokenizerConfig as Record<string, unknown>)["chat_template"] = [
    { name: "tool_use", template: "TOOLS" },
    { name: "default", template: "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}" },
  ];
  const tpl = ChatTemplate.forTokenizer(named);
  assert.equal(tpl.isDefault, false);
  assert.equal(tpl.render([{ role: "user", content: "Hi" }]), "[user]Hi");
  assert.throws(() => new ChatTemplate("{% for %}"), LoraTsError);
  const strict = new ChatTemplate(
    "{% if messages[0]['role'] != 'user' %}{{ raise_exception('must start with user') }}{% endif %}x",
  );
  assert.throws(() => strict.render([{ role: "assistant", content: "a" }]), /must start with user/);
});

test("a template that does not render incrementally is rejected for the assistant-only mask", () => {
  const tok = toyTokenizer();
  // Renders only the last message: the first k messages are not a prefix of the whole.
  const tpl = new ChatTemplate("{{ messages[-1]['content'] }}", { bos_token: "<s>", eos_token: "</s>" });
  const messages: ChatMessage[] = [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
    { role: "user", content: "How are you" },
    { role: "assistant", content: "Fine" },
  ];
  assert.throws(() => tokenizeChat(tok, tpl, messages), /does not render incrementally/);
  // trainOnInputs needs no prefixes: the whole rendering ("Fine") is trained, then the EOS the
  // template lacks; only BOS is not.
  assert.equal(tpl.render(messages), "Fine");
  const all = tokenizeChat(tok, tpl, messages, { trainOnInputs: true });
  assert.deepEqual(all.inputIds, [...tok.encode("Fine", { addBos: true }), tok.eosId]);
  assert.deepEqual(table(tok, all.inputIds, all.labels), [
    ["<s>", _],
    ["▁Fine", T],
    ["</s>", T],
  ]);
});

test("stories260K tokenizer: trained tokens of FastChat ShareGPT rows decode to the assistant turns", {
  skip: SKIP_SHARED,
}, () => {
  const tok = Tokenizer.fromJSON(
    llama2cTokenizerJson(readLlama2cTokenizer(tok512, 512)),
    tokenizerConfigJson({ bosToken: "<s>", eosToken: "</s>", unkToken: "<unk>", addBosToken: true }),
  );
  const file = parseDataset(readFileSync(fastchat, "utf8"), fastchat);
  assert.equal(file.format, "sharegpt");
  const tpl = ChatTemplate.forTokenizer(tok);
  for (const row of file.rows.slice(0, 25)) {
    if (row.kind !== "chat") continue;
    const r = tokenizeChat(tok, tpl, row.messages);
    assert.equal(r.inputIds[0], tok.bosId);
    assert.equal(r.inputIds.at(-1), tok.eosId);
    // Trained runs of tokens, decoded: each assistant turn + "<|im_end|>\n" (+ EOS after the last).
    const runs: string[] = [];
    let cur: number[] = [];
    r.labels.forEach((l, i) => {
      if (l !== IGNORE_INDEX) cur.push(r.inputIds[i]!);
      else if (cur.length) {
        runs.push(tok.decode(cur, { skipSpecial: true }));
        cur = [];
      }
    });
    if (cur.length) runs.push(tok.decode(cur, { skipSpecial: true }));
    const answers = row.messages.filter((m) => m.role === "assistant").map((m) => m.content);
    assert.equal(runs.length, answers.length);
    runs.forEach((run, k) => {
      assert.equal(run.trim(), `${answers[k]}<|im_end|>`.trim());
    });
  }
});

test("fuzz regression: a template's error text with a \\r or line break stays on one line", () => {
  // Before: only the part before the first "\n" was kept, so a "\r" in raise_exception's text (or a
  // parse error quoting the template) still reached the terminal.
  const t = new ChatTemplate("{{ raise_exception('\\r\\u0000no\\nsystem') }}");
  assert.throws(
    () => t.render([{ role: "user", content: "Hi" }]),
    (e: unknown) =>
      e instanceof LoraTsError &&
      e.message.startsWith("chat template failed to render: ") &&
      !/[\r\n]/.test(e.message),
  );
  assert.throws(
    () => new ChatTemplate("{% if %}\r\n{{"),
    (e: unknown) =>
      e instanceof LoraTsError &&
      e.message.startsWith("cannot parse the chat template: ") &&
      !/[\r\n]/.test(e.message),
  );
});

test("fuzz regression: range() is bounded as in Jinja's sandbox, per call and over one rendering", () => {
  // Before: range(10**8) built a hundred-million-item list (a minute, then out of memory); 10**7 took seconds.
  const user: ChatMessage[] = [{ role: "user", content: "Hi" }];
  const refused = (source: string, pattern: RegExp) =>
    assert.throws(
      () => new ChatTemplate(source).render(user),
      (e: unknown) => e instanceof LoraTsError && pattern.test(e.message),
    );
  refused("{% for i in range(10000000) %}{% endfor %}", /range\(\) of 10000000 items \(at most 100000/);
  refused(
    "{% for i in range(50000) %}{% for j in range(50000) %}{% endfor %}{% endfor %}",
    /more than 100000 items in all/,
  );
  // Ordinary uses are unchanged, and only the variable is bound: not an attribute spelled "range".
  assert.equal(new ChatTemplate("{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}").render(user), "135");
  assert.equal(new ChatTemplate("{{ range(3) | length }}{{ messages[0].range }}").render(user), "3");
});
