/**
 * `train --data org/name --split ... --val-split ... --columns ...` against a local mock hub: the split's
 * parquet shards are downloaded and read in order, their columns renamed, and the run is the same as
 * on a local JSONL file of the same rows.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseColumnMap } from "../../src/data/columns.js";
import type { DataSummary } from "../../src/data/examples.js";
import type { StepMetrics } from "../../src/train/events.js";
import { train } from "../../src/train/trainer.js";
import { parquetBytes } from "../data/parquet-fixture.js";
import { withHubEnv } from "../helpers/hub-env.js";
import { commitId, MockHub } from "../helpers/mock-hub.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const WORDS = ["Once upon a time", "Hello there", "How are you", "Fine thanks", "The end", "Be brief"];
const row = (i: number) => ({ q: `${WORDS[i % 6]} ${WORDS[(i * 5) % 6]}`, a: `${WORDS[(i * 7 + 1) % 6]}` });
const qa = (from: number, n: number) => {
  const rows = Array.from({ length: n }, (_, k) => row(from + k));
  return parquetBytes([
    { name: "question", data: rows.map((r) => r.q), type: "STRING" },
    { name: "answer", data: rows.map((r) => r.a), type: "STRING" },
  ]);
};

let hub: MockHub;
before(async () => {
  hub = new MockHub([
    {
      id: "ds/qa",
      type: "dataset",
      commits: [
        {
          sha: commitId("ds/qa"),
          files: [
            // Listed out of order: the split's shards are read in name order, as datasets reads them.
            { path: "data/train-00001-of-00002.parquet", data: qa(10, 14) },
            { path: "data/train-00000-of-00002.parquet", data: qa(0, 10) },
            { path: "data/validation-00000-of-00001.parquet", data: qa(100, 4) },
          ],
        },
      ],
    },
  ]);
  await hub.start();
});
after(() => hub.close());

test("train --data org/name: the split's shards in order, --columns, and --val-split; the same run as the local JSONL", async () => {
  const model = tinyModel("llama", 4, { num_key_value_heads: 2 });
  const settings = { model, maxSteps: 3, batchSize: 2, evalEvery: 3, dataWorkers: 2 };
  const run = async (data: Partial<Parameters<typeof train>[0]>) => {
    const losses: number[] = [];
    const evals: number[] = [];
    const summaries: Record<string, DataSummary> = {};
    await train({ ...settings, out: tempDir(), data: "", ...data }, [
      {
        onStep: (m: StepMetrics) => losses.push(m.loss),
        onEval: (m) => evals.push(m.loss),
        onData: (d, role) => {
          summaries[role] = d;
        },
      },
    ]);
    return { losses, evals, summaries };
  };
  const fromHub = await withHubEnv(hub.url, {}, () =>
    run({
      data: "ds/qa",
      split: "train",
      valSplit: "validation",
      columns: parseColumnMap("prompt=question,completion=answer"),
    }),
  );
  assert.equal(fromHub.summaries["train"]!.rows, 24);
  assert.equal(fromHub.summaries["val"]!.rows, 4);

  const local = (from: number, n: number) => {
    const path = join(tempDir(), `rows-${from}.jsonl`);
    const lines = Array.from({ length: n }, (_, k) => row(from + k));
    writeFileSync(path, lines.map((r) => JSON.stringify({ prompt: r.q, completion: r.a })).join("\n"));
    return path;
  };
  const fromFiles = await run({ data: local(0, 24), valData: local(100, 4) });
  assert.deepEqual(fromHub.losses, fromFiles.losses);
  assert.deepEqual(fromHub.evals, fromFiles.evals);

  // A split the data set does not have, and --val-split with --val-fraction, are one-line errors.
  await withHubEnv(hub.url, {}, async () => {
    await assert.rejects(run({ data: "ds/qa", split: "nope" }), (e: Error) => e.message.startsWith("--"));
    await assert.rejects(
      run({ data: "ds/qa", valSplit: "validation", valFraction: 0.1 }),
      /give --val-split or --val-fraction, not both/,
    );
  });
});
