/**
 * Ctrl-C during `train` (#12 item 10): SIGINT (or SIGTERM) stops the run between steps with one line
 * on stderr saying where it stopped and how to go on, and exit code 130 (143). The printed --resume
 * command then finishes the run with the adapter an uninterrupted run writes.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { listCheckpoints } from "../../src/train/checkpoint.js";
import { BIN, runCli } from "../helpers/cli.js";
import { tempDir } from "../models/fixtures.js";

const skip = existsSync(join(DEFAULT_MODEL_DIR, "model.safetensors")) ? false : "models/default is not built";
const DATA = join(DEFAULT_MODEL_DIR, "data/persona.jsonl");
/** 40 short steps (about 20 ms each): long enough to be interrupted after step 5. */
const FLAGS = [
  ...["--model", DEFAULT_MODEL_DIR, "--data", DATA, "--max-steps", "40", "--max-length", "32"],
  ...["--batch-size", "2", "--threads", "1", "--no-report"],
];

/** Runs `train`, sends `signal` once a progress line for step `after` or later shows, and waits for the exit. */
function trainAndSignal(args: string[], signal: NodeJS.Signals, after = 5) {
  const child = spawn(process.execPath, [BIN, "train", ...args], {
    env: { ...process.env, LORA_TS_PROGRESS_SECONDS: "0" }, // a line every step
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let sent = false;
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    const shown = [...stderr.matchAll(/^step\s+(\d+)\//gm)].map((m) => Number(m[1]));
    if (!sent && shown.some((n) => n >= after)) sent = child.kill(signal);
  });
  child.stdout.resume();
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, stderr })),
  );
}

test("SIGINT: one line (step, total, the --resume command, the last checkpoint), exit 130; that command finishes the run exactly", {
  skip,
}, async () => {
  const out = join(tempDir("lora-ts-int-"), "run");
  const r = await trainAndSignal([...FLAGS, "--out", out, "--save-every", "3"], "SIGINT");
  assert.equal(r.code, 130, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  const last = lines.at(-1)!;
  const m =
    /^interrupted at step (\d+) of 40; resume with: (lora-ts train .* --resume) \(last checkpoint: (.*)\)$/.exec(
      last,
    );
  assert.ok(m, last);
  assert.equal(lines.filter((l) => l.startsWith("interrupted")).length, 1);
  const [stoppedAt, command, checkpoint] = [Number(m[1]), m[2]!, m[3]!];
  assert.ok(stoppedAt >= 5 && stoppedAt < 40, last);
  // The step line it stopped at was shown; the newest checkpoint is the one named, and complete.
  assert.match(r.stderr, new RegExp(`^step\\s+${stoppedAt}/40 `, "m"));
  assert.equal(listCheckpoints(out).at(-1)?.dir, checkpoint);
  assert.equal(listCheckpoints(out).at(-1)?.step, 3 * Math.floor(stoppedAt / 3));
  assert.deepEqual(
    readdirSync(out).filter((n) => n.startsWith(".")),
    [],
    "no temporary file",
  );

  // The printed command (lora-ts = the binary; no word in it needs quoting here) resumes the run.
  const words = command.split(" ").slice(1);
  assert.ok(!words.includes("--force"));
  const resumed = spawnSync(process.execPath, [BIN, ...words], { encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`^step\\s+${3 * Math.floor(stoppedAt / 3) + 1}/40 `, "m"));

  const ref = join(tempDir("lora-ts-int-"), "run");
  assert.equal(runCli(["train", ...FLAGS, "--out", ref, "--save-every", "3", "--no-progress"]).code, 0);
  const file = "adapter_model.safetensors";
  assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(ref, file))), "the same adapter");
});

test("SIGTERM with no checkpoint: exit 143, says nothing was saved and how to start again", {
  skip,
}, async () => {
  const out = join(tempDir("lora-ts-int-"), "run");
  const r = await trainAndSignal([...FLAGS, "--out", out], "SIGTERM", 2);
  assert.equal(r.code, 143, r.stderr);
  assert.match(
    r.stderr.trimEnd().split("\n").at(-1)!,
    /^interrupted at step \d+ of 40; nothing was saved \(no --save-every, so no checkpoint to resume from\); start again with: lora-ts train .* --force --save-every N$/,
  );
  assert.deepEqual(readdirSync(out), ["metrics.jsonl"]);
});
