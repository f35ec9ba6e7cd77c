// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner, one file at a time
// (onnxruntime already uses every core), prints the spec report, and ends with one summary line:
// "N passed, N failed, N skipped". Exit code is non-zero when anything failed.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { run } from "node:test";
import { spec } from "node:test/reporters";

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

// Tests never write into the user's cache (prepared data sets, converted GGUF files): every test
// process inherits one fresh folder, removed at the end. Tests that need a cold cache set their own.
const testCache = mkdtempSync(join(tmpdir(), "lora-ts-test-cache-"));
process.env.LORA_TS_CACHE = testCache;
process.on("exit", () => rmSync(testCache, { recursive: true, force: true }));

const filter = process.argv.slice(2);
let files = findTests("dist/test");
if (filter.length > 0) files = files.filter((f) => filter.some((s) => f.includes(s)));
console.log(`running ${files.length} test files: ${files.map((f) => relative("dist/test", f)).join(", ")}`);

let passed = 0;
let failed = 0;
let skipped = 0;
const stream = run({ files, concurrency: 1 });
stream.on("test:pass", (d) => {
  if (d.details?.type === "suite") return;
  if (d.skip || d.todo) skipped++;
  else passed++;
});
stream.on("test:fail", (d) => {
  if (d.details?.type === "suite" && !d.details?.error?.failureType?.includes("hook")) return;
  failed++;
});
// The summary goes last, after the reporter has written everything.
const report = stream.compose(spec);
report.on("end", () => {
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
});
report.pipe(process.stdout, { end: false });
