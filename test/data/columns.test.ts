/** --columns: parsing the flag, renaming a record's columns, and the hint for unrecognised rows. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyColumnMap, describeColumns, formatColumnMap, parseColumnMap } from "../../src/data/columns.js";
import { parseDataset } from "../../src/data/formats.js";
import { LoraTsError } from "../../src/util/errors.js";

function flagError(flag: string): string {
  try {
    parseColumnMap(flag);
  } catch (e) {
    assert.ok(e instanceof LoraTsError, String(e));
    assert.ok(!e.message.includes("\n"), e.message);
    assert.ok(e.message.startsWith("--columns: "), e.message);
    return e.message;
  }
  return assert.fail(`no error for ${JSON.stringify(flag)}`);
}

test("--columns name=column pairs parse, with spaces dropped", () => {
  assert.deepEqual(parseColumnMap("prompt=question,completion=answer"), {
    prompt: "question",
    completion: "answer",
  });
  assert.deepEqual(parseColumnMap(" messages = chat "), { messages: "chat" });
  assert.deepEqual(parseColumnMap("text=text"), { text: "text" });
  assert.equal(formatColumnMap(parseColumnMap("prompt=q,completion=a")), "prompt=q,completion=a");
  assert.ok(Object.isFrozen(parseColumnMap("prompt=q")));
});

test("a malformed --columns is one line naming the flag", () => {
  assert.match(flagError(""), /empty/);
  assert.match(flagError("prompt"), /"prompt" is not name=column/);
  assert.match(flagError("prompt=q,"), /"" is not name=column/);
  assert.match(flagError("=question"), /empty name/);
  assert.match(flagError("prompt="), /empty column/);
  assert.match(flagError("prompt=a,prompt=b"), /"prompt" is mapped twice/);
  assert.match(flagError("prompt=a,completion=a"), /column "a" is mapped to both "prompt" and "completion"/);
  const m = flagError("question=q");
  assert.match(m, /no row format reads a field "question"/);
  for (const f of [
    "text",
    "prompt",
    "completion",
    "instruction",
    "input",
    "output",
    "messages",
    "conversations",
  ]) {
    assert.ok(m.includes(f), f);
    assert.doesNotThrow(() => parseColumnMap(`${f}=x`));
  }
});

test("applyColumnMap renames the mapped columns and keeps the rest; formats.ts then detects the format", () => {
  const map = parseColumnMap("prompt=question,completion=answer");
  const record = { question: "2+2?", answer: "4", id: 7 };
  const out = applyColumnMap(record, map);
  assert.deepEqual(out, { id: 7, prompt: "2+2?", completion: "4" });
  assert.deepEqual(record, { question: "2+2?", answer: "4", id: 7 }, "the input is not changed");
  const file = parseDataset(`${JSON.stringify(out)}\n`, "qa.jsonl");
  assert.equal(file.format, "prompt-completion");
  assert.deepEqual(file.rows[0], { kind: "prompt-completion", prompt: "2+2?", completion: "4" });
  // A mapped column replaces a column of the format's name; the source's old name goes.
  assert.deepEqual(applyColumnMap({ body: "b", text: "t" }, parseColumnMap("text=body")), { text: "b" });
  // Alpaca with the input column left as it is.
  const alpaca = applyColumnMap({ q: "Add", input: "2 2", a: "4" }, parseColumnMap("instruction=q,output=a"));
  assert.equal(parseDataset(`${JSON.stringify(alpaca)}\n`, "a.jsonl").format, "alpaca");
  // A chat column under another name.
  const chat = applyColumnMap({ turns: [{ role: "user", content: "hi" }] }, parseColumnMap("messages=turns"));
  assert.equal(parseDataset(`${JSON.stringify(chat)}\n`, "c.jsonl").format, "chat");
  // An empty map changes nothing.
  assert.equal(applyColumnMap(record, {}), record);
});

test("a missing source column is an error naming it and the mapping", () => {
  const map = parseColumnMap("prompt=question,completion=answer");
  assert.throws(
    () => applyColumnMap({ question: "q", response: "r" }, map),
    (e: Error) =>
      !e.message.includes("\n") &&
      e.message.startsWith('missing column "answer" (--columns completion=answer)') &&
      e.message.includes('"question", "response"'),
  );
});

test("describeColumns lists the columns and suggests a --columns for common names", () => {
  assert.equal(describeColumns([]), "no columns");
  assert.equal(
    describeColumns(["question", "answer", "id"]),
    'columns "question", "answer", "id" (try --columns prompt=question,completion=answer)',
  );
  assert.equal(describeColumns(["dialog"]), 'columns "dialog" (try --columns messages=dialog)');
  assert.equal(describeColumns(["body"]), 'columns "body" (try --columns text=body)');
  assert.equal(describeColumns(["a", "b"]), 'columns "a", "b"');
});
