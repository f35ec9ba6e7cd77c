/**
 * The training page end to end (#16), in headless Chromium (Debian's chromium, driven by
 * playwright-core with its executable path; no browser download): `lora-ts web --port 0` serves it;
 * the page loads the embedded default model, takes the persona example data and the settings below,
 * trains 20 steps in its Web Worker (onnxruntime-web, WebAssembly), is stopped after a few steps and
 * resumed, and ends at step 20. Every step's loss equals the Node CLI's (`lora-ts train`, same
 * settings) within 1e-3 relative. The adapter the page downloads gives, under `lora-ts generate
 * --adapter`, the same greedy ids as the page showed "after"; loaded back into the page, it gives
 * them again. A screenshot after training (kept as test-artifacts/web-after-training.png) shows the
 * loss chart and the answers.
 *
 * Needs the page built (npm run build builds dist/web: the test fails without it). Without chromium
 * or playwright-core it skips, saying which is missing.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Browser, Download, Page } from "playwright-core";
import { PNG } from "pngjs";
import { PAGE_DIR } from "../../src/cli/web.js";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { readMetrics } from "../../src/train/metrics-log.js";
import { runCli, runTrain } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";
import { startWeb, type WebProcess } from "./web-process.js";

const CHROMIUM = "/usr/bin/chromium";
const DATA = join(DEFAULT_MODEL_DIR, "data", "persona.jsonl");
const STEPS = 20;
const STOP_AFTER = 3;
const MAX_NEW_TOKENS = 16;
const PROMPTS = 3;
/** The settings, as the page's form fields and as `lora-ts train` flags: they must match. */
const SETTINGS: [field: string, flag: string, value: string][] = [
  ["#set-r", "--r", "8"],
  ["#set-alpha", "--alpha", "16"],
  ["#set-dropout", "--dropout", "0.05"],
  ["#set-targets", "--target", "all-linear"],
  ["#set-lr", "--lr", "3e-3"],
  ["#set-steps", "--max-steps", String(STEPS)],
  ["#set-max-length", "--max-length", "64"],
  ["#set-batch-size", "--batch-size", "4"],
  ["#set-seed", "--seed", "0"],
  ["#set-schedule", "--schedule", "linear"],
  ["#set-warmup", "--warmup-steps", "0"],
];
const ARTIFACT = join(REPO_ROOT, "test-artifacts", "web-after-training.png");

type PlaywrightCore = typeof import("playwright-core");

/** playwright-core, when installed; null otherwise. */
async function playwright(): Promise<PlaywrightCore | null> {
  try {
    return (await import("playwright-core")) as PlaywrightCore;
  } catch {
    return null;
  }
}

const pw = await playwright();
const missing = [
  ...(existsSync(CHROMIUM) ? [] : [`${CHROMIUM} (apt-get install chromium)`]),
  ...(pw === null ? ["the playwright-core package"] : []),
];
const skip =
  missing.length > 0 ? `headless-Chromium test of the page not run: missing ${missing.join(" and ")}` : false;

const root = tempDir("lora-ts-web-page-");
let nodeLosses: number[] = [];
let web: WebProcess | null = null;
let browser: Browser | null = null;
let page: Page | null = null;
/** The page's "after" answers: prompt, prompt ids, generated ids. */
let afterAnswers: { prompt: string; promptIds: number[]; ids: number[]; text: string }[] = [];
const adapterDir = join(root, "adapter");

after(async () => {
  await browser?.close();
  await web?.stop();
});

/** Waits until `predicate` holds in the page; the page's error line, if shown, fails at once. */
async function waitFor(p: Page, what: string, predicate: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [ok, error] = (await p.evaluate(
      `[Boolean(${predicate}), document.getElementById("error").hidden ? null : document.getElementById("error").textContent]`,
    )) as [boolean, string | null];
    if (error !== null) throw new Error(`waiting for ${what}: the page shows an error: ${error}`);
    if (ok) return;
    if (Date.now() > deadline) {
      const status = await p.textContent("#status");
      throw new Error(`waiting for ${what}: not within ${timeoutMs / 1000} s (status: ${status})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const state = (s: string) => `document.getElementById("status").dataset.state === ${JSON.stringify(s)}`;
const answers = (list: string, n: number) =>
  `document.querySelectorAll("#answers-${list} li.answer").length === ${n}`;

async function readAnswers(p: Page, list: string) {
  return p.$$eval(`#answers-${list} li.answer`, (lis) =>
    lis.map((li) => ({
      prompt: (li as HTMLElement).dataset["prompt"] ?? "",
      promptIds: JSON.parse((li as HTMLElement).dataset["promptIds"] ?? "null") as number[],
      ids: JSON.parse((li as HTMLElement).dataset["ids"] ?? "null") as number[],
      text: li.querySelector(".text")?.textContent ?? "",
    })),
  );
}

test("the Node reference run: lora-ts train with the page's settings", { skip, timeout: 180_000 }, () => {
  assert.ok(
    existsSync(join(PAGE_DIR, "index.html")),
    `${PAGE_DIR} is missing: npm run build builds the page`,
  );
  const out = join(root, "node-run");
  const flags = SETTINGS.flatMap(([, flag, value]) => [flag, value]);
  const r = runTrain(DEFAULT_MODEL_DIR, DATA, out, ...flags);
  assert.equal(r.code, 0, r.stderr);
  nodeLosses = readMetrics(join(out, "metrics.jsonl"))
    .filter((m) => m.type === "train")
    .map((m) => m.loss);
  assert.equal(nodeLosses.length, STEPS);
});

test("the page trains 20 steps (stopped and resumed) with the Node run's losses", {
  skip,
  timeout: 300_000,
}, async () => {
  assert.equal(nodeLosses.length, STEPS, "needs the Node reference run");
  web = await startWeb();
  browser = await pw!.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1100, height: 1000 },
  });
  page = await context.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(web.url);
  assert.equal(
    await page.evaluate("crossOriginIsolated"),
    true,
    "COOP/COEP make the page cross-origin isolated",
  );

  await page.click("#model-default");
  await waitFor(page, "the model", state("ready"), 120_000);
  await waitFor(page, "the answers before training", answers("before", PROMPTS), 120_000);
  const backend = (await page.textContent("#backend")) ?? "";
  assert.match(backend, /^Backend: (WebAssembly, \d+ threads?|WebGPU)\b/);

  await page.click("#data-example");
  await waitFor(page, "the example data", `document.getElementById("data-text").value.length > 1000`, 30_000);
  assert.equal(await page.textContent("#data-name"), "persona.jsonl");
  for (const [field, , value] of SETTINGS) {
    if (field === "#set-schedule") await page.selectOption(field, value);
    else await page.fill(field, value);
  }
  await page.fill("#max-new-tokens", String(MAX_NEW_TOKENS));

  // Stop as soon as the page shows step STOP_AFTER: clicked in the page itself, so that a fast
  // machine cannot finish the run during the test's round trips.
  await page.evaluate(`{
    const status = document.getElementById("status");
    const watch = new MutationObserver(() => {
      if (Number(status.dataset.step) >= ${STOP_AFTER}) {
        watch.disconnect();
        document.getElementById("stop").click();
      }
    });
    watch.observe(status, { attributes: true, attributeFilter: ["data-step"] });
  }`);
  await page.click("#train");
  await waitFor(page, "the stop", state("stopped"), 60_000);
  const stoppedAt = JSON.parse((await page.getAttribute("#loss-chart", "data-losses")) ?? "[]") as number[];
  assert.ok(
    stoppedAt.length >= STOP_AFTER && stoppedAt.length < STEPS,
    `stopped after ${stoppedAt.length} steps`,
  );
  await waitFor(page, "the answers at the stop", answers("after", PROMPTS), 120_000);
  await waitFor(page, "Resume", `!document.getElementById("resume").disabled`, 30_000);
  await page.click("#resume");
  await waitFor(page, "the end of the run", state("done"), 240_000);
  await waitFor(page, "the answers after training", answers("after", PROMPTS), 120_000);

  const losses = JSON.parse((await page.getAttribute("#loss-chart", "data-losses")) ?? "[]") as number[];
  assert.equal(losses.length, STEPS);
  assert.deepEqual(losses.slice(0, stoppedAt.length), stoppedAt, "the steps before the stop are kept");
  for (let i = 0; i < STEPS; i++) {
    const rel = Math.abs(losses[i]! - nodeLosses[i]!) / Math.abs(nodeLosses[i]!);
    assert.ok(
      rel <= 1e-3,
      `step ${i + 1}: page ${losses[i]} vs node ${nodeLosses[i]} (relative ${rel.toExponential(2)})`,
    );
  }
  assert.match((await page.textContent("#status")) ?? "", /^Done: 20 steps/);
  afterAnswers = await readAnswers(page, "after");
  assert.equal(afterAnswers.length, PROMPTS);
  for (const a of afterAnswers) assert.ok(a.ids.length > 0 && a.promptIds.length > 0, JSON.stringify(a));
  assert.deepEqual(pageErrors, []);
});

test("the screenshot after training shows the loss chart and the answers", {
  skip,
  timeout: 60_000,
}, async () => {
  assert.ok(page !== null && afterAnswers.length === PROMPTS, "needs the trained page");
  await page.evaluate("window.scrollTo(0, 0)");
  const shot = await page.screenshot({ fullPage: true });
  mkdirSync(join(REPO_ROOT, "test-artifacts"), { recursive: true });
  writeFileSync(ARTIFACT, shot);
  const png = PNG.sync.read(shot);
  /** Pixels in the element's box that are not the white background, and those of the curve's blue. */
  const ink = async (selector: string) => {
    const box = await page!.locator(selector).boundingBox();
    assert.ok(box !== null && box.width > 50 && box.height > 20, `${selector} is laid out`);
    let dark = 0;
    let blue = 0;
    const x0 = Math.max(0, Math.floor(box.x));
    const y0 = Math.max(0, Math.floor(box.y));
    const x1 = Math.min(png.width, Math.ceil(box.x + box.width));
    const y1 = Math.min(png.height, Math.ceil(box.y + box.height));
    for (let y = y0; y < y1; y++)
      for (let x = x0; x < x1; x++) {
        const i = (y * png.width + x) * 4;
        const [r, g, b] = [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
        if (r < 235 || g < 235 || b < 235) dark++;
        if (b > 170 && r < 110 && g < 150) blue++;
      }
    return { dark, blue, area: (x1 - x0) * (y1 - y0) };
  };
  const chart = await ink("#loss-chart");
  assert.ok(
    chart.dark > chart.area * 0.01,
    `the loss chart is not blank (${chart.dark} of ${chart.area} pixels)`,
  );
  assert.ok(chart.blue > 200, `the loss curve is drawn (${chart.blue} blue pixels)`);
  const shown = await ink("#answers-after");
  assert.ok(shown.dark > 500, `the answers are visible (${shown.dark} pixels)`);
  for (const li of await page.locator("#answers-after li.answer .text").all()) {
    const box = await li.boundingBox();
    assert.ok(box !== null && box.width > 0 && box.height > 0, "an answer has a size on the page");
    assert.ok(((await li.textContent()) ?? "").trim().length > 0, "an answer has text");
  }
});

test("the downloaded adapter gives `lora-ts generate --adapter` the page's greedy ids", {
  skip,
  timeout: 120_000,
}, async () => {
  assert.ok(page !== null && afterAnswers.length === PROMPTS, "needs the trained page");
  const downloads: Download[] = [];
  page.on("download", (d) => downloads.push(d));
  await page.click("#download");
  const deadline = Date.now() + 60_000;
  while (downloads.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(downloads.map((d) => d.suggestedFilename()).sort(), [
    "adapter_config.json",
    "adapter_model.safetensors",
  ]);
  mkdirSync(adapterDir, { recursive: true });
  for (const d of downloads) await d.saveAs(join(adapterDir, d.suggestedFilename()));
  const config = JSON.parse(readFileSync(join(adapterDir, "adapter_config.json"), "utf8")) as Record<
    string,
    unknown
  >;
  assert.equal(config["r"], 8);
  assert.equal(config["lora_alpha"], 16);

  for (const a of afterAnswers) {
    const r = runCli([
      "generate",
      "--model",
      DEFAULT_MODEL_DIR,
      "--adapter",
      adapterDir,
      "--prompt",
      a.prompt,
      "--max-new-tokens",
      String(MAX_NEW_TOKENS),
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const cli = JSON.parse(r.stdout) as { prompt_ids: number[]; ids: number[] };
    assert.deepEqual(cli.prompt_ids, a.promptIds, `prompt ids of ${JSON.stringify(a.prompt)}`);
    assert.deepEqual(cli.ids, a.ids, `generated ids of ${JSON.stringify(a.prompt)}`);
  }
});

test("the downloaded adapter loaded back into the page gives the same answers", {
  skip,
  timeout: 120_000,
}, async () => {
  assert.ok(page !== null && existsSync(join(adapterDir, "adapter_model.safetensors")), "needs the download");
  await page.setInputFiles("#load-adapter", [
    join(adapterDir, "adapter_config.json"),
    join(adapterDir, "adapter_model.safetensors"),
  ]);
  await waitFor(page, "the loaded adapter's answers", answers("loaded", PROMPTS), 120_000);
  assert.match((await page.textContent("#adapter-info")) ?? "", /^Adapter loaded: r 8, /);
  const loaded = await readAnswers(page, "loaded");
  assert.deepEqual(
    loaded.map((a) => a.ids),
    afterAnswers.map((a) => a.ids),
  );
});

test("a worker's error is one line on the page, and the page stays usable", {
  skip,
  timeout: 60_000,
}, async () => {
  assert.ok(page !== null && afterAnswers.length === PROMPTS, "needs the trained page");
  await page.fill("#set-targets", "no_such_proj");
  await page.click("#train");
  await page.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
  const error = (await page.textContent("#error")) ?? "";
  assert.match(error, /^train: .*no_such_proj/);
  assert.doesNotMatch(error, /\n/);
  await page.waitForSelector('#status[data-state="ready"]', { timeout: 30_000 });
  assert.equal(await page.isEnabled("#train"), true);
});
