/**
 * The sweep runner with a stand-in for the `lora-ts` binary (a script that logs its arguments, sleeps
 * and writes an adapter file, or fails on --target bad): at most `jobs` children at once, a failure is
 * recorded with its stderr's last line and the others finish, a second sweep skips finished runs
 * (no child started), changed settings are refused, and an unfinished folder is retried with --force.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { argsDifference, MARKER, type RunJob, restartFlags, runSweep } from "../../src/train/sweep-runner.js";
import { tempDir } from "../models/fixtures.js";

function fakeBin(dir: string): string {
  const bin = join(dir, "fake-cli.mjs");
  writeFileSync(
    bin,
    `import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
const args = process.argv.slice(2);
const out = args[args.indexOf("--out") + 1];
const log = ${JSON.stringify(join(dir, "calls.log"))};
appendFileSync(log, JSON.stringify({ at: "start", t: Date.now(), args }) + "\\n");
await new Promise((r) => setTimeout(r, 150));
appendFileSync(log, JSON.stringify({ at: "end", t: Date.now() }) + "\\n");
if (args[args.indexOf("--target") + 1] === "bad") {
  process.stderr.write("some progress\\nerror: LoRA target_modules entry \\"bad\\" matches no module\\n");
  process.exit(1);
}
mkdirSync(out, { recursive: true });
writeFileSync(out + "/adapter_model.safetensors", "x");
`,
  );
  return bin;
}

function calls(dir: string): { at: string; t: number; args?: string[] }[] {
  const p = join(dir, "calls.log");
  if (!existsSync(p)) return [];
  return readFileSync(p, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

function maxActive(events: { at: string; t: number }[]): number {
  let active = 0;
  let most = 0;
  for (const e of [...events].sort((a, b) => a.t - b.t || (a.at === "end" ? -1 : 1))) {
    active += e.at === "start" ? 1 : -1;
    most = Math.max(most, active);
  }
  return most;
}

const job = (name: string, target: string, lr = "0.001"): RunJob => ({
  name,
  args: ["--target", target, "--lr", lr],
  extra: ["--no-progress"],
});

test("runSweep: jobs at a time, a failure recorded, finished runs skipped on the second sweep", async () => {
  const dir = tempDir("lora-ts-sweep-runner-");
  const bin = fakeBin(dir);
  const out = join(dir, "out");
  const jobs = [job("a", "q"), job("b", "bad"), job("c", "q"), job("d", "v")];
  const lines: string[] = [];
  const first = await runSweep(jobs, {
    bin,
    out,
    jobs: 2,
    onEnd: (k, n, o) => lines.push(`${k}/${n} ${o.name} ${o.status}`),
  });
  assert.deepEqual(
    first.map((o) => o.status),
    ["done", "failed", "done", "done"],
  );
  assert.equal(first[1]!.error, 'LoRA target_modules entry "bad" matches no module');
  assert.equal(lines.length, 4);
  const c1 = calls(dir);
  assert.equal(c1.filter((e) => e.at === "start").length, 4);
  assert.equal(maxActive(c1), 2);
  // The child got the arguments, the extra ones and its folder.
  const callA = c1.find((e) => e.args?.includes(join(out, "runs", "a")));
  assert.deepEqual(callA?.args, [
    "train",
    "--target",
    "q",
    "--lr",
    "0.001",
    "--no-progress",
    "--out",
    join(out, "runs", "a"),
  ]);
  const marker = JSON.parse(readFileSync(join(out, "runs", "a", MARKER), "utf8"));
  assert.deepEqual(marker.args, ["--target", "q", "--lr", "0.001"]);
  assert.ok(existsSync(join(out, "logs", "b.log")));
  assert.match(readFileSync(join(out, "logs", "b.log"), "utf8"), /some progress/);

  // Again: only the failed run starts a child.
  const second = await runSweep(jobs, { bin, out, jobs: 1 });
  assert.deepEqual(
    second.map((o) => o.status),
    ["skipped", "failed", "skipped", "skipped"],
  );
  const started = calls(dir).filter((e) => e.at === "start");
  assert.equal(started.length, 5);
  assert.equal(started[4]!.args![2], "bad");

  // Another learning rate for a finished run: refused before any child starts.
  await assert.rejects(
    runSweep([job("a", "q", "0.002")], { bin, out, jobs: 1 }),
    /runs\/a: finished with other train settings \(--lr: "0.001" there, "0.002" here\)/,
  );
  assert.equal(calls(dir).filter((e) => e.at === "start").length, 5);
});

test("an unfinished run folder is trained again with --force, or --resume when it has a checkpoint and --save-every", () => {
  const dir = tempDir("lora-ts-sweep-restart-");
  assert.deepEqual(restartFlags(join(dir, "none"), []), []);
  mkdirSync(join(dir, "partial"));
  writeFileSync(join(dir, "partial", "metrics.jsonl"), "");
  assert.deepEqual(restartFlags(join(dir, "partial"), ["--save-every", "5"]), ["--force"]);
  mkdirSync(join(dir, "partial", "checkpoint-5"));
  assert.deepEqual(restartFlags(join(dir, "partial"), ["--save-every", "5"]), ["--resume"]);
  assert.deepEqual(restartFlags(join(dir, "partial"), []), ["--force"]);
});

test("argsDifference names the first differing flag, or null", () => {
  assert.equal(argsDifference(["--lr", "1", "--packing"], ["--packing", "--lr", "1"]), null);
  assert.equal(
    argsDifference(["--lr", "1"], ["--lr", "1", "--packing"]),
    "--packing: not given there, set here",
  );
  assert.equal(argsDifference(["--r", "4"], ["--r", "8"]), '--r: "4" there, "8" here');
});

test("Ctrl-C / SIGTERM: the running child gets the signal, no new run starts, the rest are 'not run'", async () => {
  const dir = tempDir("lora-ts-sweep-signal-");
  const bin = join(dir, "slow-cli.mjs");
  writeFileSync(
    bin,
    `process.on("SIGTERM", () => process.exit(143));\nsetTimeout(() => {}, 60000);\nprocess.stdout.write("up\\n");\n`,
  );
  const out = join(dir, "out");
  const started: string[] = [];
  const pending = runSweep([job("a", "q"), job("b", "q"), job("c", "q")], {
    bin,
    out,
    jobs: 1,
    onStart: (_k, _n, j) => started.push(j.name),
  });
  // Once the first child is up (its log has its line), the sweep is "signalled".
  const log = join(out, "logs", "a.log");
  for (let i = 0; i < 200 && !(existsSync(log) && readFileSync(log, "utf8").includes("up")); i++)
    await new Promise((r) => setTimeout(r, 25));
  process.emit("SIGTERM", "SIGTERM");
  const outcomes = await pending;
  assert.equal(outcomes.interrupted, "SIGTERM");
  assert.deepEqual(
    outcomes.map((o) => o.status),
    ["interrupted", "not run", "not run"],
  );
  assert.deepEqual(started, ["a"]);
  assert.equal(process.listenerCount("SIGTERM"), 0);
});
