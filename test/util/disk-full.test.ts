/**
 * Disk full (#12 "Prove it"): writing an adapter, a checkpoint or a merged model into a nearly full
 * filesystem ends with one line and leaves the previous files intact. Each case mounts its own small
 * tmpfs, so it needs root (or CAP_SYS_ADMIN); it skips with a message otherwise.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import { runCli, runTrain } from "../helpers/cli.js";
import { fileHashes } from "../helpers/file-hashes.js";
import { REPO_ROOT } from "../helpers/shared.js";

const MODEL = join(REPO_ROOT, "models/default");
const DATA = join(MODEL, "data/persona.jsonl");
const root = mkdtempSync(join(tmpdir(), "lora-ts-disk-full-"));
const mounted: string[] = [];

/** Mounts a tmpfs of `mib` MiB, or returns the reason it cannot. */
function mountTmpfs(name: string, mib: number): string | { skip: string } {
  const dir = join(root, name);
  mkdirSync(dir);
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir], { encoding: "utf8" });
  if (r.status !== 0) return { skip: `cannot mount a tmpfs (${(r.stderr || String(r.error)).trim()})` };
  mounted.push(dir);
  return dir;
}

const probe = process.getuid?.() === 0 ? mountTmpfs("probe", 1) : { skip: "not root" };
const SKIP = typeof probe === "string" ? false : `needs root to mount a small tmpfs (${probe.skip})`;

after(() => {
  for (const dir of mounted.reverse()) spawnSync("umount", [dir]);
  rmSync(root, { recursive: true, force: true });
});

/** Fills `dir`'s filesystem until `leave` bytes are free. */
function fillLeaving(dir: string, leave: number): void {
  const s = statfsSync(dir);
  const free = Number(s.bavail) * Number(s.bsize);
  assert.ok(free > leave, `only ${free} bytes free in ${dir}`);
  writeFileSync(join(dir, "filler"), Buffer.alloc(free - leave));
}

function assertOneLineNoSpace(r: { code: number | null; stderr: string }) {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: .*(ENOSPC|no space left)/i);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
}

/** Hidden temporary names (`.x.tmp`, `.OUT.train-*`) left in `dir`. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith("."));
}

test("disk full: a --force train run fails with one line and the previous run is intact", {
  skip: SKIP,
}, () => {
  const fs = mountTmpfs("adapter", 4) as string;
  const out = join(fs, "run");
  assert.equal(runTrain(MODEL, DATA, out, "--max-steps", "1", "--max-length", "64").code, 0);
  const before = fileHashes(out);
  fillLeaving(fs, 16 * 1024);
  const r = runTrain(MODEL, DATA, out, "--max-steps", "1", "--max-length", "64", "--seed", "1", "--force");
  assertOneLineNoSpace(r);
  assert.deepEqual(fileHashes(out), before);
  assert.deepEqual(leftovers(fs), []);
});

test("disk full: a checkpoint that does not fit fails with one line; the earlier one stays readable", {
  skip: SKIP,
}, () => {
  // The size of one checkpoint, measured on a filesystem with room.
  const roomy = join(root, "roomy");
  const args = ["--max-steps", "3", "--save-every", "1", "--max-length", "64"];
  assert.equal(runTrain(MODEL, DATA, roomy, ...args).code, 0);
  const ckBytes = dirBytes(join(roomy, "checkpoint-1"));

  const fs = mountTmpfs("checkpoint", 4) as string;
  // Room for checkpoint-1 and the metrics, not for checkpoint-2.
  fillLeaving(fs, Math.round(ckBytes * 1.5));
  const out = join(fs, "run");
  const r = runTrain(MODEL, DATA, out, ...args);
  assertOneLineNoSpace(r);
  assert.deepEqual(
    readdirSync(out).filter((n) => n.startsWith("checkpoint-")),
    ["checkpoint-1"],
  );
  assert.deepEqual(leftovers(out), []);
  assert.deepEqual(fileHashes(join(out, "checkpoint-1")), fileHashes(join(roomy, "checkpoint-1")));
  assert.equal(loadAdapter(join(out, "checkpoint-1")).tensors.size > 0, true);
  // With room again, the run resumes from it and ends as the uninterrupted run did.
  rmSync(join(fs, "filler"));
  assert.equal(runTrain(MODEL, DATA, out, ...args, "--resume").code, 0);
  const adapterFile = (dir: string) => readFileSync(join(dir, "adapter_model.safetensors"));
  assert.ok(
    adapterFile(out).equals(adapterFile(roomy)),
    "the resumed adapter differs from the uninterrupted run's",
  );
});

test("disk full: merge --force fails with one line and the previous merged model is intact", {
  skip: SKIP,
}, () => {
  const adapter = join(root, "merge-adapter");
  assert.equal(runTrain(MODEL, DATA, adapter, "--max-steps", "1", "--max-length", "64").code, 0);
  const fs = mountTmpfs("merged", 24) as string;
  const out = join(fs, "merged");
  const merge = (...extra: string[]) =>
    runCli(["merge", "--model", MODEL, "--adapter", adapter, "--out", out, ...extra]);
  assert.equal(merge().code, 0);
  const before = fileHashes(out);
  fillLeaving(fs, 1024 * 1024);
  assertOneLineNoSpace(merge("--force"));
  assert.deepEqual(fileHashes(out), before);
  assert.deepEqual(leftovers(fs), []);
});

function dirBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((n, e) => n + statSync(join(dir, e.name)).size, 0);
}
