/**
 * Parquet through data preparation: row groups parsed in the main thread (with --columns), tokenized
 * on the workers, the same prepared bytes as the same rows in JSONL, whatever the number of workers;
 * a bad record is numbered by its row in the whole file.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parquetWriteBuffer } from "hyparquet-writer";
import { parseColumnMap } from "../../src/data/columns.js";
import { type DataProgress, prepareData } from "../../src/data/prepare.js";
import { Rng } from "../../src/util/rng.js";
import { toyTokenizer, WORDS } from "./toy-tokenizer.js";

const root = mkdtempSync(join(tmpdir(), "lora-ts-prepare-parquet-"));
after(() => rmSync(root, { recursive: true, force: true }));
const tok = toyTokenizer();

function rows(n: number): { q: string; a: string }[] {
  const rng = new Rng(11);
  const w = (k: number) => Array.from({ length: k }, () => WORDS[rng.next() % WORDS.length]).join(" ");
  return Array.from({ length: n }, () => ({ q: w(1 + (rng.next() % 12)), a: w(1 + (rng.next() % 12)) }));
}

function parquet(path: string, data: { q: string | null; a: string }[]): void {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: "question", data: data.map((r) => r.q), type: "STRING" },
      { name: "answer", data: data.map((r) => r.a), type: "STRING" },
    ],
    rowGroupSize: 64,
  });
  writeFileSync(path, new Uint8Array(buf));
}

async function prepare(
  path: string,
  workers: number,
  columns?: string,
  onProgress?: (p: DataProgress) => void,
) {
  const dir = join(mkdtempSync(join(root, "out-")), "data");
  const meta = await prepareData(dir, {
    files: [path],
    tokenizer: tok,
    options: { maxLength: 16 },
    workers,
    ...(columns !== undefined ? { columns: parseColumnMap(columns) } : {}),
    ...(onProgress !== undefined ? { onProgress } : {}),
  });
  const bytes = Object.fromEntries(
    ["ids.bin", "trained.bin", "offsets.bin"].map((f) => [f, readFileSync(join(dir, f))]),
  );
  return { meta, bytes };
}

test("parquet with --columns prepares the same examples as the JSONL of its rows, on 1 and 3 workers", async () => {
  const data = rows(500);
  const pq = join(root, "qa.parquet");
  parquet(pq, data);
  const jsonl = join(root, "qa.jsonl");
  writeFileSync(jsonl, data.map((r) => JSON.stringify({ prompt: r.q, completion: r.a })).join("\n"));
  const want = await prepare(jsonl, 1);
  assert.ok(want.meta.summary.truncated > 0);
  for (const workers of [1, 3]) {
    const seen: DataProgress[] = [];
    const got = await prepare(pq, workers, "prompt=question,completion=answer", (p) => seen.push(p));
    // A parquet file says how many rows it holds: progress shows rows of the total.
    assert.ok(seen.every((p) => p.totalRows === 500));
    assert.deepEqual(
      [seen.at(-1)!.stage, seen.at(-1)!.rows, seen.at(-1)!.bytesDone === seen.at(-1)!.bytesTotal],
      ["done", 500, true],
    );
    assert.deepEqual(got.bytes, want.bytes, `${workers} workers`);
    assert.deepEqual(got.meta.summary, { ...want.meta.summary, path: pq });
    assert.equal(got.meta.rowFormat, "prompt-completion");
  }
  // --columns applies to JSON lines as well.
  const renamed = join(root, "renamed.jsonl");
  writeFileSync(renamed, data.map((r) => JSON.stringify({ question: r.q, answer: r.a })).join("\n"));
  assert.deepEqual((await prepare(renamed, 2, "prompt=question,completion=answer")).bytes, want.bytes);
});

test("parquet: a bad record is a one-line error with its row index in the file, whatever the workers", async () => {
  const data: { q: string | null; a: string }[] = rows(300);
  data[200] = { q: null, a: "x" };
  const pq = join(root, "bad.parquet");
  parquet(pq, data);
  for (const workers of [1, 3]) {
    await assert.rejects(
      prepare(pq, workers, "prompt=question,completion=answer"),
      (e: Error) => e.message === `${pq}: row index 200: missing field "prompt"`,
    );
  }
  await assert.rejects(prepare(pq, 2, "prompt=nope,completion=answer"), (e: Error) =>
    e.message.startsWith(`${pq}: row index 0: missing column "nope"`),
  );
});
