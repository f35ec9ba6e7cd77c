/**
 * `lora-ts sweep` end to end on a tiny random Llama: a 4-run sweep (2 target sets × 2 ranks) with
 * results.json, results.csv, report.html and the terminal table; a second run of the same command
 * skips every run (no adapter rewritten); a changed train option is refused; a target that matches
 * nothing fails its runs and the others finish; bad flags are one-line errors before anything runs;
 * --config with a sweep: section. The headless-Chromium check of the report needs chromium and
 * playwright-core, and says so when it skips.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { sweepArgs } from "../helpers/sweep-args.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const model = tinyModel("llama", 3);
const data = wordData(24);
const root = tempDir("lora-ts-sweep-cli-");
const base = (out: string) => sweepArgs(model, data, out);

const out = join(root, "grid");
const gridArgs = [...base(out), "--r", "1,4", "--targets", "q_proj", "--targets", "q_proj,v_proj"];
let first: ReturnType<typeof runCli>;

test("a 4-run sweep: progress lines, the plan and summary tables, results.json/csv, report.html", () => {
  first = runCli(gridArgs);
  assert.equal(first.code, 0, first.stderr);
  for (let k = 1; k <= 4; k++) assert.match(first.stdout, new RegExp(`\\[${k}/4\\] \\S+: done in`));
  assert.match(first.stdout, /^targets\s+r\s+trainable\s+seeds$/m);
  assert.match(first.stdout, /validation loss \(final, mean ± std over seeds; \* = lowest\)/);
  assert.match(first.stdout, /^r=1\s+\d+\.\d{3}\s+\d+\.\d{3}/m);
  assert.equal((first.stdout.match(/ \*$/gm) ?? []).length, 1);

  const rows = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Record<string, unknown>[];
  assert.deepEqual(
    rows.map((r) => [r["targets"], r["r"], r["seed"], r["status"], r["alpha"]]),
    [
      ["q_proj", 1, 0, "done", 16],
      ["q_proj", 4, 0, "done", 16],
      ["q_proj,v_proj", 1, 0, "done", 16],
      ["q_proj,v_proj", 4, 0, "done", 16],
    ],
  );
  // hidden 32, 4 heads of 8, 4 kv heads, 2 layers: q and v are 32→32.
  assert.deepEqual(
    rows.map((r) => r["trainable_params"]),
    [2 * 1 * 64, 2 * 4 * 64, 2 * 1 * 128, 2 * 4 * 128],
  );
  for (const r of rows) {
    for (const k of [
      "final_train_loss",
      "best_val_loss",
      "final_val_loss",
      "final_val_perplexity",
      "tokens_per_sec",
      "seconds",
    ])
      assert.ok(typeof r[k] === "number" && Number.isFinite(r[k]), `${k} of ${r["name"]}`);
    assert.ok((r["best_val_loss"] as number) <= (r["final_val_loss"] as number));
  }
  const csv = readFileSync(join(out, "results.csv"), "utf8").trim().split("\n");
  assert.equal(csv.length, 5);
  assert.match(csv[3]!, /^q_proj\+v_proj-r1-s0,"q_proj,v_proj",1,16,0,256,/);

  const html = readFileSync(join(out, "report.html"), "utf8");
  assert.match(html, /<table id="paper-table"/);
  assert.match(html, /<td class="best"/);
  assert.equal((html.match(/<svg /g) ?? []).length, 2 + 4);
  assert.match(html, /r \(log scale\)/);
  for (const name of ["q_proj-r1-s0", "q_proj+v_proj-r4-s0"]) {
    assert.ok(existsSync(join(out, "runs", name, "adapter_model.safetensors")));
    assert.ok(existsSync(join(out, "runs", name, "sweep-run.json")));
  }
});

test("the same command again skips every finished run; a changed option is refused before any run", () => {
  assert.equal(first?.code, 0, "needs the first test's sweep");
  const adapter = join(out, "runs", "q_proj-r4-s0", "adapter_model.safetensors");
  const mtime = statSync(adapter).mtimeMs;
  const again = runCli(gridArgs);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((again.stdout.match(/: skipped \(finished before, same settings\)/g) ?? []).length, 4);
  assert.equal(statSync(adapter).mtimeMs, mtime);
  // A wider grid runs only what is new.
  const wider = runCli([...gridArgs.map((a) => (a === "1,4" ? "1,2,4" : a))]);
  assert.equal(wider.code, 0, wider.stderr);
  assert.equal((wider.stdout.match(/: skipped/g) ?? []).length, 4);
  assert.equal((wider.stdout.match(/: done in/g) ?? []).length, 2);
  assert.equal(JSON.parse(readFileSync(join(out, "results.json"), "utf8")).length, 6);

  const changed = runCli([...gridArgs, "--lr", "0.01"]);
  assert.equal(changed.code, 1);
  assert.equal(changed.stderr.trim().split("\n").length, 1);
  assert.match(
    changed.stderr,
    /^error: .*q_proj-r1-s0: finished with other train settings \(--lr: not given there, "0\.01" here\)/,
  );
  assert.doesNotMatch(changed.stdout, /\[1\/\d\]/);
  assert.equal(statSync(adapter).mtimeMs, mtime);
});

test("a target set that matches nothing: its run fails and is recorded, the other finishes, exit 1", () => {
  const o = join(root, "failing");
  const r = runCli([...base(o), "--r", "2", "--targets", "nope", "--targets", "q_proj"]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /note: --targets "nope": .*matches no module/);
  assert.match(r.stdout, /\[1\/2\] nope-r2-s0: failed: LoRA target_modules entry "nope" matches no module/);
  assert.match(r.stdout, /\[2\/2\] q_proj-r2-s0: done in/);
  assert.match(r.stderr, /^error: 1 of 2 runs failed/);
  const rows = JSON.parse(readFileSync(join(o, "results.json"), "utf8")) as Record<string, unknown>[];
  assert.deepEqual(
    rows.map((x) => [x["name"], x["status"]]),
    [
      ["nope-r2-s0", "failed"],
      ["q_proj-r2-s0", "done"],
    ],
  );
  assert.match(String(rows[0]!["error"]), /"nope" matches no module/);
  assert.equal(rows[0]!["final_val_loss"], null);
  assert.match(readFileSync(join(o, "report.html"), "utf8"), /<td>failed: LoRA target_modules/);
});

test("bad flags: one-line errors, non-zero exit, nothing written", () => {
  const o = join(root, "never");
  const cases: [string[], RegExp][] = [
    [[...base(o), "--targets", "q_proj"], /give --r 1,2,4,8,64 or --budget N/],
    [
      [...base(o), "--r", "1,x", "--targets", "q_proj"],
      /--r: expected comma-separated positive integers, got "1,x"/,
    ],
    [[...base(o), "--r", "1", "--budget", "100", "--targets", "q_proj"], /--budget: it replaces the r list/],
    [[...base(o), "--r", "1"], /--targets: give at least one target set/],
    [
      [...base(o), "--r", "1", "--targets", "q_proj", "--seeds", "0"],
      /--seeds: expected an integer >= 1, got "0"/,
    ],
    [[...base(o), "--r", "1", "--targets", "q_proj", "--jobs", "two"], /--jobs: expected an integer >= 1/],
    [[...base(o), "--r", "1", "--targets", "q_proj", "--lr", "abc"], /--lr: /],
    [[...base(o), "--r", "1", "--targets", "q_proj", "--bogus"], /unknown option '--bogus'/],
    [[...base(o), "--budget", "100", "--targets", "nope"], /--targets "nope": .*matches no module/],
    [[...base(o), "--r", "1", "--targets", "q_proj", "--mode", "full"], /--mode full: a sweep varies LoRA/],
    [
      [...base(o), "--r", "1", "--targets", "q_proj", "--epochs", "1"],
      /give --epochs or --max-steps, not both/,
    ],
    [
      [
        "sweep",
        "--model",
        model,
        "--data",
        join(root, "missing.jsonl"),
        "--out",
        o,
        "--r",
        "1",
        "--targets",
        "q_proj",
      ],
      /--data .*missing\.jsonl": no such file/,
    ],
    [["sweep", "--data", data, "--out", o, "--r", "1", "--targets", "q_proj"], /--model is required/],
    [
      [...base(o), "--r", "1", "--targets", "q_proj", "--config", join(root, "none.yaml")],
      /none\.yaml: cannot read the config file/,
    ],
    [
      [...base(o), "--r", "1", "--targets", "q_proj", "--val-data", data],
      /--val-fraction: give --val-data or --val-fraction, not both/,
    ],
    [["sweep", "--demo", "--out", o, "--r", "1"], /--demo: runs a fixed plan; --r is not taken with it/],
  ];
  for (const [args, want] of cases) {
    const r = runCli(args);
    assert.notEqual(r.code, 0, args.join(" "));
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, want);
    assert.ok(!existsSync(o), `${args.join(" ")} wrote ${o}`);
  }
  // A folder that is not a sweep's is not taken over.
  const taken = tempDir("lora-ts-sweep-taken-");
  writeFileSync(join(taken, "notes.txt"), "x");
  const r = runCli([...base(taken), "--r", "1", "--targets", "q_proj"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is not empty and holds no sweep/);
  assert.ok(!existsSync(join(taken, "runs")));
});

test("--config: train keys plus a sweep: section; r and target at the top level are refused with the key named", () => {
  const o = join(root, "from-config");
  const cfg = join(root, "sweep.yaml");
  writeFileSync(
    cfg,
    `model: ${JSON.stringify(model)}\ndata: ${JSON.stringify(data)}\nval_fraction: 0.25\nmax_steps: 2\nmax_length: 16\nmemory_check: false\nsweep:\n  budget: 700\n  targets: [q_proj, [q_proj, v_proj]]\n  seeds: 2\n`,
  );
  const r = runCli(["sweep", "--config", cfg, "--out", o, "--no-report"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^budget 700 trainable parameters/m);
  assert.match(r.stdout, /^budget 700 +r=5: \d\.\d{3} ± \d\.\d{3}( \*)? +r=3: \d\.\d{3} ± \d\.\d{3}( \*)?$/m);
  const rows = JSON.parse(readFileSync(join(o, "results.json"), "utf8")) as Record<string, unknown>[];
  // q_proj: 128 per r: r=5 (640, off 60) beats r=6 (768, off 68); q,v: 256 per r: r=3 (768, off 68) beats r=2 (512, off 188).
  assert.deepEqual(
    rows.map((x) => [x["targets"], x["r"], x["seed"], x["trainable_params"]]),
    [
      ["q_proj", 5, 0, 640],
      ["q_proj", 5, 1, 640],
      ["q_proj,v_proj", 3, 0, 768],
      ["q_proj,v_proj", 3, 1, 768],
    ],
  );
  const bad = join(root, "bad.yaml");
  writeFileSync(bad, "r: 4\n");
  const e1 = runCli(["sweep", "--config", bad, "--out", join(root, "x")]);
  assert.match(e1.stderr, /^error: .*bad\.yaml: key "r" is not for a sweep/);
  writeFileSync(bad, "sweep:\n  seeds: 0\n");
  const e2 = runCli(["sweep", "--config", bad, "--out", join(root, "x")]);
  assert.match(e2.stderr, /^error: .*bad\.yaml: sweep\.seeds: /);
  writeFileSync(bad, "sweep:\n  rank: 4\n");
  const e3 = runCli(["sweep", "--config", bad, "--out", join(root, "x")]);
  assert.match(e3.stderr, /^error: .*bad\.yaml: unknown key "sweep\.rank"/);
});

/** The little of playwright-core's API this test uses. */
interface Locator {
  count(): Promise<number>;
  boundingBox(): Promise<{ width: number; height: number } | null>;
}
interface Browser {
  newPage(): Promise<{ goto(url: string): Promise<unknown>; locator(selector: string): Locator }>;
  close(): Promise<void>;
}

/** playwright-core, when installed; null otherwise. */
async function playwright(): Promise<{ chromium: { launch(o: unknown): Promise<Browser> } } | null> {
  try {
    return (await import(["playwright", "core"].join("-"))) as never;
  } catch {
    return null;
  }
}

const CHROMIUM = "/usr/bin/chromium";

test("report.html in headless Chromium: the table and the charts render", async (t) => {
  const pw = await playwright();
  const missing = [
    ...(existsSync(CHROMIUM) ? [] : [CHROMIUM]),
    ...(pw === null ? ["the playwright-core package"] : []),
  ];
  if (missing.length > 0) {
    t.skip(`headless-Chromium check of report.html not run: missing ${missing.join(" and ")}`);
    return;
  }
  assert.ok(existsSync(join(out, "report.html")), "needs the first test's report");
  const browser = await pw!.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    await page.goto(`file://${join(out, "report.html")}`);
    // The grid as results.json has it by now (the resume test widened it to r = 1,2,4).
    const grid = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as {
      r: number;
      targets: string;
      status: string;
    }[];
    const rs = new Set(grid.map((x) => x.r));
    const sets = new Set(grid.map((x) => x.targets));
    assert.equal(rs.size, 3, "r = 1, 2, 4 after the resume test");
    const cells = await page.locator("#paper-table tbody td").count();
    assert.equal(cells, rs.size * sets.size);
    assert.equal(await page.locator("#paper-table td.best").count(), 1);
    for (const id of ["#chart-r svg", "#chart-params svg"]) {
      const box = await page.locator(id).boundingBox();
      assert.ok(box && box.width > 100 && box.height > 50, id);
    }
    assert.equal(
      await page.locator("#curves svg").count(),
      grid.filter((x) => x.status === "done" || x.status === "skipped").length,
    );
  } finally {
    await browser.close();
  }
});
