// Runs every fuzz target (test/fuzz/*.targets.ts, compiled) with many inputs: 100000 each unless
// --runs N. Prints one line per target as it finishes (runs, failures, slowest input, largest memory
// growth over one input) and a Markdown table at the end for FUZZING.md; the exit code is non-zero
// when any target failed.
//
//   node scripts/fuzz.mjs [--runs N] [--seed S] [--dist DIR] [NAME-FILTER ...]
//
// `npm run fuzz` compiles into dist-fuzz-run/ first (never dist/, which other builds own).
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  options: {
    runs: { type: "string", default: "100000" },
    seed: { type: "string" },
    dist: { type: "string", default: "dist-fuzz-run" },
  },
  allowPositionals: true,
});
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs < 1)
  throw new Error(`--runs must be a positive integer, got ${values.runs}`);
const seed = values.seed === undefined ? undefined : Number(values.seed);

const fuzzDir = resolve(values.dist, "test/fuzz");
const { runTarget, formatStats } = await import(pathToFileURL(join(fuzzDir, "harness.js")).href);
const targets = [];
for (const f of readdirSync(fuzzDir).sort()) {
  if (!f.endsWith(".targets.js")) continue;
  const mod = await import(pathToFileURL(join(fuzzDir, f)).href);
  targets.push(...mod.targets);
}
const chosen = targets.filter((t) => positionals.length === 0 || positionals.some((p) => t.name.includes(p)));
console.log(`fuzzing ${chosen.length} targets, ${runs} inputs each (node ${process.version})`);

const all = [];
for (const t of chosen) {
  const s = await runTarget(t, runs, seed);
  all.push(s);
  console.log(formatStats(s));
}

const mib = (n) => (n / 2 ** 20).toFixed(1);
console.log(
  "\n| target | runs | accepted | failures | explicit cases (failed) | slowest input (ms) | max growth (MiB) | time (s) |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
for (const s of all) {
  console.log(
    `| ${s.name} | ${s.runs} | ${s.accepted} | ${s.failures} | ${s.explicit} (${s.explicitFailures.length}) | ` +
      `${s.slowestMs.toFixed(1)} | ${mib(s.maxGrowth)} | ${s.seconds.toFixed(0)} |`,
  );
}
const failed = all.filter((s) => s.failures > 0 || s.explicitFailures.length > 0);
const total = all.reduce((n, s) => n + s.runs, 0);
console.log(`\n${total} inputs, ${failed.length} of ${all.length} targets failed`);
process.exitCode = failed.length > 0 ? 1 : 0;
