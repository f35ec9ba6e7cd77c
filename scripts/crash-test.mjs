// `npm run crash-test` (#12 "Prove it — Crash and resume"): SIGKILLs `lora-ts train --save-every 3`
// 20 times at random moments (some while a checkpoint is being written), resumes after each kill,
// then checks that the final adapter is byte-identical to an uninterrupted run's and that every
// checkpoint left reads back. The harness is test/train/crash-harness.ts, compiled; the CI test
// test/train/crash-resume.test.ts runs it with 3 kills.
//
//   node scripts/crash-test.mjs [--kills N] [--seed S] [--dist DIR]
// The seed is random unless given, and printed, so a failing run can be replayed. --dist is the
// build folder (default dist); `npm run crash-test` builds into its own, dist-crash-test, so that it
// does not replace a dist/ that something else is using.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : process.argv[i + 1];
};
const kills = Number(arg("--kills", 20));
const seed = Number(arg("--seed", Math.floor(Math.random() * 2 ** 31)));
const dist = resolve(arg("--dist", "dist"));
if (!Number.isInteger(kills) || kills < 1 || !Number.isInteger(seed)) {
  console.error("crash-test: --kills takes a whole number >= 1, --seed a whole number");
  process.exit(1);
}
const harness = join(dist, "test/train/crash-harness.js");
if (!existsSync(harness)) {
  console.error(`crash-test: ${harness} is missing (build first: npm run build)`);
  process.exit(1);
}
const { crashAndResume, cleanUp } = await import(pathToFileURL(harness).href);
const { DEFAULT_MODEL_DIR } = await import(pathToFileURL(join(dist, "src/models/default-model.js")).href);

// 30 steps of 2 sequences of at most 32 tokens, a checkpoint every 3 steps, the newest 3 kept.
const args = [
  ...["--model", DEFAULT_MODEL_DIR, "--data", join(DEFAULT_MODEL_DIR, "data/persona.jsonl")],
  ...["--max-steps", "30", "--max-length", "32", "--batch-size", "2"],
  ...["--save-every", "3", "--save-total-limit", "3", "--threads", "1"],
];
const dir = mkdtempSync(join(tmpdir(), "lora-ts-crash-test-"));
console.log(
  `crash-test: ${kills} kills, seed ${seed} (replay: npm run crash-test -- --seed ${seed}), in ${dir}`,
);
const r = await crashAndResume({ args, dir, kills, seed, log: (line) => console.log(line) });
for (const f of r.failures) console.log(`FAILED: ${f}`);
console.log(
  `\nkills: ${r.kills}, kills during checkpoint writes: ${r.killsDuringCheckpointWrite}, ` +
    `resumes: ${r.resumes}, restarts: ${r.restarts}, failures: ${r.failures.length}`,
);
if (r.failures.length === 0) cleanUp(dir);
else console.log(`the runs are kept in ${dir}`);
process.exitCode = r.failures.length === 0 ? 0 : 1;
