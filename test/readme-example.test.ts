/** The README's library example runs as it is written (transpiled, importing the package by name). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import ts from "typescript";
import { REPO_ROOT } from "./helpers/shared.js";
import { tempDir } from "./models/fixtures.js";

function librarySection(readme: string): string {
  const section = readme.slice(readme.indexOf("## Library API"));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(m, "README has a ```ts block under ## Library API");
  return m[1]!;
}

test("README: the library example runs", {
  skip: existsSync(join(REPO_ROOT, "models/default/model.safetensors"))
    ? false
    : "the default model is not built",
}, () => {
  const code = librarySection(readFileSync(join(REPO_ROOT, "README.md"), "utf8"));
  const js = ts.transpileModule(code, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  // Inside the package, `import ... from "lora-ts"` resolves to this checkout (package self-reference).
  const file = join(REPO_ROOT, "dist", "readme-example.mjs");
  writeFileSync(file, js);
  // The example writes its adapter under os.tmpdir(): point that at a folder removed after the test.
  const env = { ...process.env, TMPDIR: tempDir("lora-ts-readme-") };
  const r = spawnSync(process.execPath, [file], { encoding: "utf8", cwd: REPO_ROOT, env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^trained \d+ parameters; final loss \d/m);
});
