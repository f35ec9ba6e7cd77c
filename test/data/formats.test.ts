import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { readDataset } from "../../src/data/dataset-file.js";
import { parseDataset } from "../../src/data/formats.js";
import { FileFormatError } from "../../src/util/errors.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lora-ts-formats-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** Runs f, expects a one-line FileFormatError, returns its message. */
function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${e}`);
    assert.ok(!e.message.includes("\n"), `one line: ${JSON.stringify(e.message)}`);
    return e.message;
  }
  assert.fail("no error");
}

test("each JSONL row format is detected and parsed", () => {
  const cases: [string, string, unknown][] = [
    ['{"text":"hello"}', "text", { kind: "text", text: "hello" }],
    [
      '{"prompt":"2+2=","completion":"4"}',
      "prompt-completion",
      { kind: "prompt-completion", prompt: "2+2=", completion: "4" },
    ],
    [
      '{"instruction":"Add","input":"2 2","output":"4"}',
      "alpaca",
      { kind: "alpaca", instruction: "Add", input: "2 2", output: "4" },
    ],
    [
      '{"instruction":"Hi","output":"Hello"}',
      "alpaca",
      { kind: "alpaca", instruction: "Hi", input: "", output: "Hello" },
    ],
    [
      '{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}]}',
      "chat",
      {
        kind: "chat",
        messages: [
          { role: "system", content: "S" },
          { role: "user", content: "U" },
          { role: "assistant", content: "A" },
        ],
      },
    ],
    [
      '{"id":"x","conversations":[{"from":"system","value":"S"},{"from":"human","value":"U"},{"from":"gpt","value":"A"},{"from":"user","value":"U2"},{"from":"assistant","value":"A2"}]}',
      "sharegpt",
      {
        kind: "chat",
        messages: [
          { role: "system", content: "S" },
          { role: "user", content: "U" },
          { role: "assistant", content: "A" },
          { role: "user", content: "U2" },
          { role: "assistant", content: "A2" },
        ],
      },
    ],
  ];
  for (const [line, format, row] of cases) {
    const f = parseDataset(`${line}\n\n${line}\n`, "d.jsonl");
    assert.equal(f.format, format);
    assert.deepEqual(f.rows, [row, row]);
  }
});

test("JSON arrays, .json files holding JSON lines, and plain text", () => {
  const arr = parseDataset('[{"text":"a"},\n {"text":"b"}]', "d.json");
  assert.equal(arr.format, "text");
  assert.deepEqual(arr.rows, [
    { kind: "text", text: "a" },
    { kind: "text", text: "b" },
  ]);
  const jl = parseDataset('{"text":"a"}\r\n{"text":"b"}\r\n', "d.json");
  assert.equal(jl.rows.length, 2);
  const txt = readDataset(write("book.txt", "Once upon a time.\nThe end.\n"));
  assert.equal(txt.format, "plaintext");
  assert.deepEqual(txt.rows, [{ kind: "document", text: "Once upon a time.\nThe end.\n" }]);
});

test("a malformed JSONL line is an error naming the file and the line", () => {
  const p = write(
    "data.jsonl",
    ['{"text":"one"}', "", '{"text":"three"}', '{"text": "four",}', '{"text":"five"}'].join("\n"),
  );
  const msg = errorOf(() => readDataset(p));
  assert.match(msg, /^.*data\.jsonl: line 4: invalid JSON \(.+\)$/);
  assert.ok(msg.startsWith(`${p}: line 4: `), msg);
});

test("wrong field types, missing fields and mixed formats name the line / row index", () => {
  const jsonl = (rows: string[]) => errorOf(() => parseDataset(rows.join("\n"), "d.jsonl"));
  assert.equal(
    jsonl(['{"text":"a"}', '{"text":3}']),
    'd.jsonl: line 2: field "text" must be a string, got a number',
  );
  assert.equal(
    jsonl(['{"prompt":"a","completion":"b"}', '{"prompt":"a"}']),
    'd.jsonl: line 2: missing field "completion"',
  );
  assert.match(
    jsonl(['{"text":"a"}', '{"prompt":"a","completion":"b"}']),
    /^d\.jsonl: line 2: row is prompt\/completion .* but the file's first row is text/,
  );
  assert.match(jsonl(['{"foo":1}']), /^d\.jsonl: line 1: unrecognised row \(keys: foo\)/);
  assert.equal(jsonl(['"just a string"']), "d.jsonl: line 1: expected a JSON object, got a string");
  assert.equal(
    jsonl(['{"messages":[{"role":"user","content":"a"},{"role":"bot","content":"b"}]}']),
    'd.jsonl: line 1: messages[1].role is "bot"; expected one of system, user, assistant',
  );
  assert.equal(
    jsonl(['{"conversations":[{"from":"human","value":null}]}']),
    "d.jsonl: line 1: conversations[0].value must be a string, got null",
  );
  assert.equal(jsonl(['{"messages":[]}']), 'd.jsonl: line 1: field "messages" is empty');
  const arr = errorOf(() =>
    parseDataset('[{"instruction":"a","output":"b"},{"instruction":"a","output":7}]', "d.json"),
  );
  assert.equal(arr, 'd.json: row index 1: field "output" must be a string, got a number');
});

test("a JSON array with a syntax error, empty files, unknown types and a missing file", () => {
  assert.match(
    errorOf(() => parseDataset('[{"text":"a"},\n{"text" "b"}]', "d.json")),
    /^d\.json: invalid JSON/,
  );
  assert.equal(
    errorOf(() => parseDataset("  \n", "d.jsonl")),
    "d.jsonl: the file has no rows",
  );
  assert.equal(
    errorOf(() => parseDataset("", "d.txt")),
    "d.txt: the text file is empty",
  );
  assert.match(
    errorOf(() => parseDataset("a,b\n", "d.csv")),
    /^d\.csv: unknown dataset file type "\.csv"/,
  );
  const missing = path.join(tmp, "nope.jsonl");
  assert.equal(
    errorOf(() => readDataset(missing)),
    `${missing}: no such file`,
  );
});

test("fuzz regression: invalid JSON quoting a carriage return is still one line", () => {
  // Before: only "\n" was taken out of V8's message, which quotes the start of the line raw.
  assert.throws(
    () => parseDataset("\u0001\r=$\n", "d.jsonl"),
    (e: unknown) =>
      e instanceof FileFormatError &&
      e.message.startsWith("d.jsonl: line 1: invalid JSON") &&
      !/[\r\n]/.test(e.message),
  );
});
