import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readDataset } from "../../src/data/dataset-file.js";
import { buildExamples } from "../../src/data/examples.js";
import { type DataProgress, prepareData } from "../../src/data/prepare.js";
import { CorruptPreparedDataError, PreparedData } from "../../src/data/prepared.js";
import { Rng } from "../../src/util/rng.js";
import { toyTokenizer, WORDS } from "./toy-tokenizer.js";

const root = mkdtempSync(join(tmpdir(), "lora-ts-prepare-test-"));
after(() => rmSync(root, { recursive: true, force: true }));

// A template that fails on one content, to have an error made while tokenizing a row.
const TEMPLATE =
  "{% for m in messages %}{% if m['content'] == 'boom' %}{{ raise_exception('boom row') }}{% endif %}" +
  "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const tok = toyTokenizer({ chatTemplate: TEMPLATE });
const MAX = 24;

function words(rng: Rng, n: number): string {
  return Array.from({ length: n }, () => WORDS[rng.next() % WORDS.length]).join(" ");
}

/**
 * A chat JSONL of `rows` rows: mixed lengths (some truncated, some dropped because truncation leaves
 * nothing, some with no assistant turn at all), blank lines, CRLF endings and non-ASCII text.
 */
function chatJsonl(rows: number, seed = 1): string {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) {
    const kind = rng.next() % 10;
    const user =
      kind === 0 ? words(rng, 30) : `${words(rng, 1 + (rng.next() % 6))}${kind === 1 ? " é–ü" : ""}`;
    const messages = [{ role: "user", content: user }];
    if (kind !== 2) messages.push({ role: "assistant", content: words(rng, 1 + (rng.next() % 20)) });
    lines.push(JSON.stringify({ messages, id: i }));
    if (kind === 3) lines.push("");
  }
  return `${lines.map((l, i) => (i % 7 === 3 ? `${l}\r` : l)).join("\n")}\n`;
}

async function prepare(
  path: string,
  workers: number,
  chunkBytes?: number,
  onProgress?: (p: DataProgress) => void,
) {
  const dir = mkdtempSync(join(root, `out-${workers}-`));
  const meta = await prepareData(join(dir, "data"), {
    files: [path],
    tokenizer: tok,
    options: { maxLength: MAX },
    workers,
    chunkBytes,
    onProgress,
  });
  return { dir: join(dir, "data"), meta };
}

const filesOf = (dir: string) =>
  Object.fromEntries(
    ["ids.bin", "trained.bin", "offsets.bin", "meta.json"].map((f) => [f, readFileSync(join(dir, f))]),
  );

/** The error a call throws, as class name + message. */
async function errorOf(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
  return "no error";
}

test("prepareData: 1, 2 and 3 workers (and many chunks) write the same bytes, equal to buildExamples in memory", async () => {
  const path = join(root, "chat.jsonl");
  writeFileSync(path, chatJsonl(2000));
  const reference = buildExamples(readDataset(path), tok, { maxLength: MAX });
  assert.ok(reference.summary.truncated > 0 && reference.summary.droppedByTruncation > 0);
  assert.ok(reference.summary.dropped - reference.summary.droppedByTruncation > 0);

  const progress: DataProgress[] = [];
  const serial = await prepare(path, 1, undefined, (p) => progress.push(p));
  assert.deepEqual(serial.meta.summary, reference.summary);
  assert.deepEqual(serial.meta.rows, {
    read: 2000,
    kept: reference.summary.examples,
    truncated: reference.summary.truncated,
    dropped: {
      total: reference.summary.dropped,
      nothingLeftAfterTruncation: reference.summary.droppedByTruncation,
      noTokenToTrain: reference.summary.dropped - reference.summary.droppedByTruncation,
    },
  });
  assert.equal(progress[0]!.stage, "start");
  assert.equal(progress.at(-1)!.stage, "done");
  assert.equal(progress.at(-1)!.rows, 2000);
  assert.equal(progress.at(-1)!.bytesDone, progress.at(-1)!.bytesTotal);

  const data = PreparedData.open(serial.dir);
  try {
    assert.equal(data.size, reference.examples.length);
    for (let i = 0; i < data.size; i++) {
      assert.deepEqual(data.get(i), reference.examples[i]);
      assert.equal(data.length(i), reference.examples[i]!.inputIds.length);
    }
  } finally {
    data.close();
  }

  const want = filesOf(serial.dir);
  for (const [workers, chunkBytes] of [
    [2, undefined],
    [3, undefined],
    [1, 5000],
    [2, 3000],
    [3, 7777],
  ] as const) {
    const run = await prepare(path, workers, chunkBytes);
    assert.deepEqual(
      filesOf(run.dir),
      want,
      `${workers} workers, chunks of ${chunkBytes ?? "default"} bytes`,
    );
  }
});

test("prepareData: the first error in the file wins, with its line / row number in the whole file, whatever the workers", async () => {
  const rows = chatJsonl(2000, 2).split("\n");
  // A bad line late in the file and a row that fails to tokenize later still: the bad line wins.
  const bad = [...rows];
  bad[1500] = '{"messages": [}';
  bad[1800] = JSON.stringify({ messages: [{ role: "user", content: "boom" }] });
  const badPath = join(root, "bad.jsonl");
  writeFileSync(badPath, bad.join("\n"));
  const want = await errorOf(() => readDataset(badPath));
  assert.match(want, /bad\.jsonl: line 1501: invalid JSON/);
  // A row that fails to tokenize, then a format change: the row error wins, numbered by row.
  const boom = [...rows];
  boom[1200] = JSON.stringify({ messages: [{ role: "user", content: "boom" }] });
  boom[1700] = JSON.stringify({ text: "Hi" });
  const boomPath = join(root, "boom.jsonl");
  writeFileSync(boomPath, boom.join("\n"));
  const rowsBefore = boom.slice(0, 1200).filter((l) => l.trim() !== "").length;
  const wantBoom = `LoraTsError: ${boomPath}: row ${rowsBefore}: chat template failed to render: boom row`;
  for (const [workers, chunkBytes] of [
    [1, undefined],
    [2, undefined],
    [3, 4000],
    [1, 4000],
  ] as const) {
    assert.equal(await errorOf(() => prepare(badPath, workers, chunkBytes)), want);
    assert.equal(await errorOf(() => prepare(boomPath, workers, chunkBytes)), wantBoom);
  }
  // A format change is a FileFormatError naming the line, as parseDataset says it.
  const mixed = [...rows];
  mixed[900] = JSON.stringify({ text: "Hi" });
  const mixedPath = join(root, "mixed.jsonl");
  writeFileSync(mixedPath, mixed.join("\n"));
  const wantMixed = await errorOf(() => readDataset(mixedPath));
  for (const workers of [1, 3])
    assert.equal(await errorOf(() => prepare(mixedPath, workers, 3000)), wantMixed);
  // An empty file, a file of blank lines, a missing file: as readDataset says.
  for (const [name, text] of [
    ["empty.jsonl", ""],
    ["blank.jsonl", "\n\n  \n"],
    ["empty.json", "  "],
  ] as const) {
    const p = join(root, name);
    writeFileSync(p, text);
    assert.equal(await errorOf(() => prepare(p, 2)), await errorOf(() => readDataset(p)));
  }
  const missing = join(root, "missing.jsonl");
  assert.equal(await errorOf(() => prepare(missing, 2)), await errorOf(() => readDataset(missing)));
});

test("prepareData: a .txt document and a JSON array are prepared as buildExamples makes them", async () => {
  const txt = join(root, "doc.txt");
  writeFileSync(txt, `${words(new Rng(3), 400)}\n`);
  const arr = join(root, "rows.json");
  writeFileSync(
    arr,
    JSON.stringify(
      chatJsonl(50, 4)
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l)),
    ),
  );
  for (const path of [txt, arr]) {
    const reference = buildExamples(readDataset(path), tok, { maxLength: MAX });
    const { dir, meta } = await prepare(path, 2);
    assert.deepEqual(meta.summary, reference.summary);
    const data = PreparedData.open(dir);
    assert.deepEqual(
      Array.from({ length: data.size }, (_, i) => data.get(i)),
      reference.examples,
    );
    data.close();
  }
});

test("PreparedData.open: files that do not match meta.json are a CorruptPreparedDataError", async () => {
  const path = join(root, "small.jsonl");
  writeFileSync(path, chatJsonl(40, 5));
  for (const [file, damage] of [
    ["ids.bin", (p: string) => truncateSync(p, 8)],
    ["trained.bin", (p: string) => writeFileSync(p, "x", { flag: "a" })],
    ["offsets.bin", (p: string) => truncateSync(p, 0)],
    ["meta.json", (p: string) => writeFileSync(p, "{")],
    ["meta.json", (p: string) => writeFileSync(p, JSON.stringify({ format: "other" }))],
  ] as const) {
    const { dir } = await prepare(path, 1);
    damage(join(dir, file));
    assert.throws(
      () => PreparedData.open(dir),
      (e: Error) => e instanceof CorruptPreparedDataError && e.message.startsWith(join(dir, file)),
    );
  }
  const { dir } = await prepare(path, 1);
  rmSync(join(dir, "trained.bin"));
  assert.throws(() => PreparedData.open(dir), CorruptPreparedDataError);
});

test("prepareData: lines longer than a read block, no final newline, CRLF: the same bytes on 1 and 3 workers", async () => {
  const rng = new Rng(6);
  // Long lines, cheap to tokenize: the bytes are in a field no row format reads.
  const long = (i: number) => JSON.stringify({ text: words(rng, 8), pad: "x".repeat(70_000 + i * 5000) });
  const lines = Array.from({ length: 12 }, (_, i) =>
    i % 3 === 0 ? long(i) : JSON.stringify({ text: words(rng, 5) }),
  );
  const path = join(root, "long-lines.jsonl");
  writeFileSync(path, lines.join("\r\n")); // no final newline
  const reference = buildExamples(readDataset(path), tok, { maxLength: MAX });
  const serial = await prepare(path, 1);
  assert.deepEqual(serial.meta.summary, reference.summary);
  for (const [workers, chunkBytes] of [
    [3, 1000],
    [2, 70_000],
  ] as const) {
    const run = await prepare(path, workers, chunkBytes);
    assert.deepEqual(
      filesOf(run.dir),
      filesOf(serial.dir),
      `${workers} workers, chunks of ${chunkBytes} bytes`,
    );
  }
});
