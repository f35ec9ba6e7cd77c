/**
 * The page's backend choice under a WebGPU that offers an adapter (#16): headless Chromium with
 * SwiftShader's software WebGPU (`--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader`), which
 * was measured to get the training graph wrong. The worker probes the run's first batch on WebGPU and
 * on WebAssembly, and whichever backend it then uses, the page says which and why, and every step's
 * loss equals `lora-ts train`'s within 1e-3 relative: a WebGPU that disagrees is not used.
 *
 * Skips, saying what is missing, without chromium or playwright-core.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { readMetrics } from "../../src/train/metrics-log.js";
import { runTrain } from "../helpers/cli.js";
import { tempDir } from "../models/fixtures.js";
import { startWeb } from "./web-process.js";

const CHROMIUM = "/usr/bin/chromium";
const STEPS = 3;
const SETTINGS: [field: string, flag: string, value: string][] = [
  ["#set-targets", "--target", "q_proj,v_proj"],
  ["#set-lr", "--lr", "3e-3"],
  ["#set-steps", "--max-steps", String(STEPS)],
  ["#set-max-length", "--max-length", "64"],
  ["#set-batch-size", "--batch-size", "4"],
  ["#set-seed", "--seed", "1"],
];

let pw: typeof import("playwright-core") | null = null;
try {
  pw = await import("playwright-core");
} catch {
  pw = null;
}
const missing = [
  ...(existsSync(CHROMIUM) ? [] : [`${CHROMIUM} (apt-get install chromium)`]),
  ...(pw === null ? ["the playwright-core package"] : []),
];
const skip = missing.length > 0 ? `WebGPU backend test not run: missing ${missing.join(" and ")}` : false;

test("with a software WebGPU adapter, the page names its backend and its losses are lora-ts train's", {
  skip,
  timeout: 300_000,
}, async () => {
  const out = join(tempDir("lora-ts-webgpu-"), "run");
  const r = runTrain(
    DEFAULT_MODEL_DIR,
    join(DEFAULT_MODEL_DIR, "data/persona.jsonl"),
    out,
    ...SETTINGS.flatMap(([, f, v]) => [f, v]),
  );
  assert.equal(r.code, 0, r.stderr);
  const nodeLosses = readMetrics(join(out, "metrics.jsonl"))
    .filter((m) => m.type === "train")
    .map((m) => m.loss);

  const web = await startWeb();
  const browser = await pw!.chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(web.url);
    const offered = await page.evaluate("(async () => Boolean(await navigator.gpu?.requestAdapter()))()");
    const state = (s: string) => `document.getElementById("status").dataset.state === ${JSON.stringify(s)}`;
    await page.click("#model-default");
    await page.waitForFunction(state("ready"), undefined, { timeout: 120_000 });
    await page.click("#data-example");
    await page.waitForFunction(`document.getElementById("data-text").value.length > 1000`);
    for (const [field, , value] of SETTINGS) await page.fill(field, value);
    await page.click("#train");
    await page.waitForFunction(`${state("done")} || !document.getElementById("error").hidden`, undefined, {
      timeout: 240_000,
    });
    const error = await page.evaluate(
      `document.getElementById("error").hidden ? null : document.getElementById("error").textContent`,
    );
    assert.equal(error, null, `the page shows an error: ${error}`);

    const backend = (await page.textContent("#backend")) ?? "";
    const name = await page.getAttribute("#backend", "data-backend");
    if (offered) {
      // Either WebGPU agreed on the first batch, or the page says why it is not used.
      assert.match(
        backend,
        name === "webgpu"
          ? /^Backend: WebGPU\. .*agree/
          : /^Backend: WebAssembly, .*WebGPU (disagrees|failed)/,
      );
    } else {
      assert.match(backend, /^Backend: WebAssembly, .*WebGPU/);
    }
    const losses = JSON.parse((await page.getAttribute("#loss-chart", "data-losses")) ?? "[]") as number[];
    assert.equal(losses.length, STEPS);
    losses.forEach((l, i) => {
      const rel = Math.abs(l - nodeLosses[i]!) / Math.abs(nodeLosses[i]!);
      assert.ok(
        rel < 1e-3,
        `step ${i + 1} on ${name}: page ${l} vs lora-ts train ${nodeLosses[i]} (${backend})`,
      );
    });
  } finally {
    await browser.close();
    await web.stop();
  }
});
