// Builds the browser page into dist/web (or --out DIR): esbuild bundles web/page.ts (the page, main
// thread) and web/worker.ts (the Web Worker that trains) for browsers, copies index.html and
// style.css, and copies onnxruntime-web's runtime (.mjs glue and .wasm) to ort/, where the worker
// points ort.env.wasm.wasmPaths.
//
// The library reaches onnxruntime through src/graph/ort-node.ts; in the bundle a plugin puts
// src/graph/ort-web.ts (same exports) in its place. The build is for platform "browser" with no
// Node built-in marked external, so esbuild fails when anything Node-only is reached, and the output
// is checked once more for `node:` imports.
//
// Usage: node scripts/build-web.mjs [--out DIR] [--entry-worker FILE] [--minify]
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function flag(name) {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith("--")) fail(`${name}: expected a value`);
  return v;
}

function fail(message) {
  process.stderr.write(`build-web: ${message}\n`);
  process.exit(1);
}

const out = resolve(repo, flag("--out") ?? "dist/web");
// Only for developing the page before the worker exists: a worker entry outside web/.
const workerEntry = resolve(repo, flag("--entry-worker") ?? "web/worker.ts");
const minify = process.argv.includes("--minify");

const ortNode = join(repo, "src/graph/ort-node.ts");
const ortWeb = join(repo, "src/graph/ort-web.ts");

/** src/graph/ort-node.ts (onnxruntime-node) -> src/graph/ort-web.ts (onnxruntime-web), however imported. */
const ortWebPlugin = {
  name: "ort-web",
  setup(build) {
    build.onResolve({ filter: /(^|\/)ort-node(\.js|\.ts)?$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path.replace(/\.js$/, ".ts"));
      const withTs = target.endsWith(".ts") ? target : `${target}.ts`;
      if (withTs !== ortNode) return undefined;
      return { path: ortWeb };
    });
  },
};

for (const f of ["web/page.ts", "web/index.html"]) if (!existsSync(join(repo, f))) fail(`${f} is missing`);
if (!existsSync(workerEntry)) fail(`${workerEntry} is missing (the page's Web Worker)`);

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "ort"), { recursive: true });

let result;
try {
  result = await esbuild.build({
    absWorkingDir: repo,
    entryPoints: [
      { in: join(repo, "web/page.ts"), out: "page" },
      { in: workerEntry, out: "worker" },
    ],
    outdir: out,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    sourcemap: true,
    minify,
    metafile: true,
    logLevel: "warning",
    plugins: [ortWebPlugin],
  });
} catch {
  // esbuild has printed the errors (e.g. a Node built-in reached from the page or the worker).
  fail("esbuild failed (see above)");
}

// What esbuild resolved must hold no Node built-in and not onnxruntime-node.
for (const [file, info] of Object.entries(result.metafile.inputs)) {
  for (const imp of info.imports) {
    if (imp.path.startsWith("node:") || imp.path.includes("onnxruntime-node"))
      fail(`${file} imports ${imp.path}, which is not for browsers`);
  }
}
for (const name of ["page.js", "worker.js"]) {
  const text = readFileSync(join(out, name), "utf8");
  const m = text.match(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']node:[\w/]+["']/);
  if (m) fail(`${name} holds a Node import: ${m[0]}`);
}

copyFileSync(join(repo, "web/index.html"), join(out, "index.html"));
if (existsSync(join(repo, "web/style.css")))
  copyFileSync(join(repo, "web/style.css"), join(out, "style.css"));

// onnxruntime-web's runtime: exactly the .mjs glue and .wasm files the worker's bundle names
// (onnxruntime-web/webgpu 1.30 loads the .asyncify pair, for WebAssembly and WebGPU alike); the other
// builds in its dist/ would add about 42 MB to the package unused. The worker sets
// ort.env.wasm.wasmPaths to `${origin}/ort/`.
const ortDist = join(repo, "node_modules/onnxruntime-web/dist");
const runtime = [
  ...new Set(
    readFileSync(join(out, "worker.js"), "utf8").match(/ort-wasm-simd-threaded[\w.]*?\.(?:mjs|wasm)/g),
  ),
];
if (!runtime.some((n) => n.endsWith(".wasm")) || !runtime.some((n) => n.endsWith(".mjs")))
  fail(`worker.js names no onnxruntime-web runtime (.mjs and .wasm): ${runtime.join(", ") || "none"}`);
for (const n of runtime) {
  if (!existsSync(join(ortDist, n))) fail(`worker.js loads ${n}, which ${ortDist} does not have`);
  copyFileSync(join(ortDist, n), join(out, "ort", n));
}

process.stdout.write(`build-web: ${out} (page.js, worker.js, index.html, ort/: ${runtime.length} files)\n`);
