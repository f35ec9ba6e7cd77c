/**
 * The package as a bundler sees it (#16): an app importing `lora-ts/web`, bundled by esbuild for the
 * browser, resolves the package's exports and its `browser` field, so it gets onnxruntime-web in
 * place of onnxruntime-node and no Node built-in (esbuild fails on one with platform "browser").
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import * as esbuild from "esbuild";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";

test("a browser bundle of lora-ts/web (exports + browser field) has onnxruntime-web and no Node module", async () => {
  const app = tempDir("lora-ts-consumer-");
  mkdirSync(join(app, "node_modules"));
  symlinkSync(REPO_ROOT, join(app, "node_modules", "lora-ts"));
  writeFileSync(
    join(app, "app.js"),
    'import { TrainingRun, openModelFiles, greedyAnswers } from "lora-ts/web";\nexport { TrainingRun, openModelFiles, greedyAnswers };\n',
  );
  const result = await esbuild.build({
    absWorkingDir: app,
    entryPoints: ["app.js"],
    bundle: true,
    platform: "browser",
    format: "esm",
    outfile: join(app, "out.js"),
    preserveSymlinks: true,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(
    inputs.some((p) => p.includes("dist/src/graph/ort-web.js")),
    "the browser field maps ort-node.js to ort-web.js",
  );
  assert.ok(
    !inputs.some((p) => p.includes("ort-node.js") || p.includes("onnxruntime-node")),
    inputs.filter((p) => p.includes("ort")).join(", "),
  );
  assert.ok(
    inputs.some((p) => p.includes("onnxruntime-web")),
    "onnxruntime-web is bundled",
  );
  const out = readFileSync(join(app, "out.js"), "utf8");
  assert.doesNotMatch(out, /\bfrom\s*["']node:|\bimport\(\s*["']node:/);
});
