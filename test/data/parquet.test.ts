/**
 * Parquet rows (src/data/parquet.ts) from files hyparquet-writer writes here: values, row groups,
 * codecs, and one-line errors for files that are cut, damaged or not parquet at all.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { countParquetRows, readParquetRecords } from "../../src/data/parquet.js";
import { FileFormatError } from "../../src/util/errors.js";
import { parquetBytes, promptCompletionParquet } from "./parquet-fixture.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lora-ts-parquet-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const p = path.join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}

/** Every row group the reader yields. */
async function groupsOf(p: string): Promise<Record<string, unknown>[][]> {
  const out: Record<string, unknown>[][] = [];
  for await (const g of readParquetRecords(p)) out.push(g);
  return out;
}

/** The one-line FileFormatError reading `p` gives (reading all of it, then counting its rows). */
async function errorsOf(p: string): Promise<string[]> {
  const out: string[] = [];
  for (const attempt of [() => groupsOf(p), () => countParquetRows(p)]) {
    const e = await attempt().then(
      () => assert.fail(`no error for ${p}`),
      (err: unknown) => err,
    );
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${(e as Error)?.stack}`);
    assert.ok(!e.message.includes("\n"), `one line: ${JSON.stringify(e.message)}`);
    assert.ok(e.message.startsWith(`${p}: `), e.message);
    out.push(e.message);
  }
  return out;
}

const CHATS = [
  [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello!" },
  ],
  [
    { role: "system", content: "Be brief." },
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4" },
  ],
  [{ role: "user", content: "ünïcödé ✓" }],
];

test("rows come back as plain objects: strings, a list<struct> messages column, nulls, ids", async () => {
  const p = write(
    "chat.parquet",
    parquetBytes([
      { name: "messages", data: CHATS },
      { name: "source", data: ["a", null, "c"], type: "STRING" },
      { name: "id", data: [1n, 2n, 2n ** 60n], type: "INT64" },
    ]),
  );
  assert.equal(await countParquetRows(p), 3);
  const groups = await groupsOf(p);
  assert.equal(groups.length, 1);
  assert.deepEqual(groups[0], [
    { messages: CHATS[0], source: "a", id: 1 },
    { messages: CHATS[1], source: null, id: 2 },
    // Beyond 2^53 an INT64 stays exact, as a decimal string.
    { messages: CHATS[2], source: "c", id: "1152921504606846976" },
  ]);
  // Plain JSON values: nothing the row formats or JSON.stringify would trip on.
  assert.deepEqual(JSON.parse(JSON.stringify(groups[0])), groups[0]);
});

test("several row groups are yielded one at a time, in order", async () => {
  const p = write("groups.parquet", promptCompletionParquet(25, undefined, { rowGroupSize: 10 }));
  assert.equal(await countParquetRows(p), 25);
  const groups = await groupsOf(p);
  assert.deepEqual(
    groups.map((g) => g.length),
    [10, 10, 5],
  );
  const rows = groups.flat();
  assert.deepEqual(rows[0], { prompt: "q0", completion: "a0" });
  assert.deepEqual(rows[24], { prompt: "q24", completion: "a24" });
  assert.deepEqual(
    rows.map((r) => r["prompt"]),
    Array.from({ length: 25 }, (_, i) => `q${i}`),
  );
  // Stopping early is fine (the file handle is closed by the generator's return).
  for await (const g of readParquetRecords(p)) {
    assert.equal(g.length, 10);
    break;
  }
});

test("uncompressed, snappy and gzip files read the same", async () => {
  for (const codec of ["UNCOMPRESSED", "SNAPPY", "GZIP"] as const) {
    const p = write(`codec-${codec}.parquet`, promptCompletionParquet(3, undefined, { codec }));
    assert.deepEqual((await groupsOf(p)).flat()[2], { prompt: "q2", completion: "a2" }, codec);
  }
});

test("a truncated parquet file is one line naming the file, wherever it is cut", async () => {
  const whole = promptCompletionParquet(50, undefined, { rowGroupSize: 20 });
  const cuts = [0, 3, 4, 7, 100, Math.floor(whole.length / 2), whole.length - 12, whole.length - 5];
  for (const cut of [...cuts, whole.length - 4, whole.length - 1]) {
    const p = write(`cut-${cut}.parquet`, whole.subarray(0, cut));
    const [read, count] = await errorsOf(p);
    assert.equal(read, count);
    if (cut >= 4) assert.match(read!, /truncated/, `cut at ${cut}`);
  }
});

test("random bytes, text and an empty file are 'not a parquet file'", async () => {
  const files = {
    "random.parquet": randomBytes(4096),
    "data.parquet": Buffer.from('{"text":"a jsonl file with the wrong name"}\n'),
    "empty.parquet": new Uint8Array(0),
  };
  for (const [name, bytes] of Object.entries(files)) {
    const p = write(name, bytes);
    for (const m of await errorsOf(p)) assert.equal(m, `${p}: not a parquet file (no PAR1 footer)`);
  }
  const missing = path.join(tmp, "nope.parquet");
  for (const m of await errorsOf(missing)) assert.match(m, /nope\.parquet: cannot read/);
  for (const m of await errorsOf(tmp)) assert.match(m, /cannot read \(not a file\)/);
});

test("a damaged footer is one line; in-place damage elsewhere decodes or is one line", async () => {
  const whole = promptCompletionParquet(40, undefined, { rowGroupSize: 16 });
  const bad = new Uint8Array(whole);
  new DataView(bad.buffer).setUint32(bad.length - 8, bad.length * 2, true);
  assert.match((await errorsOf(write("footer-length.parquet", bad)))[0]!, /truncated or damaged/);
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const metaLength = new DataView(whole.buffer, whole.byteOffset).getUint32(whole.length - 8, true);
  const footer = whole.length - 8 - metaLength;
  // 200 damaged footers, then 60 files damaged anywhere (fixed cases: hyparquet trusts the counts
  // inside a page's data, so damage there can take it long; parquet-check.ts catches the page
  // headers and the footer, which is what a cut or a bad write damages).
  for (let i = 0; i < 260; i++) {
    const copy = new Uint8Array(whole);
    const [from, span] = i < 200 ? [footer, metaLength] : [4, copy.length - 12];
    for (let k = 0; k < 3; k++) copy[from + Math.floor(rand() * span)] = Math.floor(rand() * 256);
    const p = write(`damaged-${i}.parquet`, copy);
    try {
      await groupsOf(p);
    } catch (e) {
      assert.ok(e instanceof FileFormatError, `damage ${i}: ${(e as Error)?.stack}`);
      assert.ok(!e.message.includes("\n") && e.message.startsWith(`${p}: `), e.message);
    }
  }
});

test("a codec lora-ts cannot decode is one line naming it", async () => {
  const p = write("lz4.parquet", promptCompletionParquet(3, undefined, { codec: "LZ4" }));
  assert.equal(await countParquetRows(p), 3);
  const e = await groupsOf(p).then(
    () => assert.fail("no error"),
    (err: Error) => err,
  );
  assert.ok(e instanceof FileFormatError && !e.message.includes("\n"), String(e));
  assert.match(e.message, /lz4\.parquet: compressed with LZ4, which lora-ts cannot read/);
});
