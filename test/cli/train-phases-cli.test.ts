/**
 * A run is never silent while onnxruntime holds the main thread (#17 "never silent for minutes"):
 * `lora-ts train` announces building the graph and creating the session (with its node count), and
 * a helper thread prints "still ..." lines when nothing was printed for LORA_TS_PROGRESS_SECONDS
 * (30 s by default; a fraction of the default model's ~0.4 s build here). --no-progress prints none.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";

const MODEL = join(REPO_ROOT, "models/default");
const DATA = join(MODEL, "data/persona.jsonl");
const args = (out: string) => [
  "train",
  "--model",
  MODEL,
  "--data",
  DATA,
  "--out",
  out,
  "--max-steps",
  "2",
  "--target",
  "all-linear",
  "--no-report",
];

test("train announces the graph and the session, and says it is alive while they block", () => {
  const r = runCli(args(join(tempDir(), "run")), { LORA_TS_PROGRESS_SECONDS: "0.03" });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split("\n");
  const graph = lines.indexOf("building the training graph...");
  const session = lines.findIndex((l) =>
    /^creating the onnxruntime session \([\d,]+ graph nodes\)\.\.\.$/.test(l),
  );
  assert.ok(graph >= 0 && session > graph, r.stderr);
  assert.ok(
    lines.some((l) =>
      /^ {2}\.\.\. still (creating the onnxruntime session \([\d,]+ graph nodes\)|step \d of 2) \(\d+s\)$/.test(
        l,
      ),
    ),
    `a "still" line while onnxruntime blocks:\n${r.stderr}`,
  );
  assert.ok(
    lines.some((l) => l.startsWith("step 2/2")),
    r.stderr,
  );
});

test("train --no-progress prints no phase or heartbeat line", () => {
  const r = runCli([...args(join(tempDir(), "run")), "--no-progress"], { LORA_TS_PROGRESS_SECONDS: "0.03" });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /building the training graph|still /);
});
