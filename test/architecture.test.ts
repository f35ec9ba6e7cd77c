/**
 * The layer rule of issue #11, checked on every src/ file so that it stays that way:
 *
 *   util → graph → io | data → models → lora → train | infer → cli | serve | index (the library entry)
 *
 * (a) an import runs down the layers only (same-rank folders may not import each other, unless
 *     ALLOWED_SAME_RANK declares the edge, one way, with a reason);
 * (b) the folders form no cycle;
 * (c) no file outside src/models/ switches on the model family;
 * (d) the LoRA layer is one file, src/lora/layer.ts, of at most 120 lines, and the scaling (alpha/r,
 *     alpha/√r) and the parameter count r·(in + out) are computed nowhere else;
 * and each src/ folder has a README.md whose "May import:" line agrees with the rank table.
 *
 * The checks are plain functions over (path, text) pairs; the last tests run them on small fixture
 * trees, so a check that can no longer fail is caught too.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { test } from "node:test";
import ts from "typescript";
import { REPO_ROOT } from "./helpers/shared.js";

/**
 * The layers, lowest first. A file may import files of its own folder and of folders of a lower rank.
 * `index` is src/index.ts, the library entry: it sits beside the CLI, not above it, so the library
 * never loads the command-line program.
 */
export const RANKS: Readonly<Record<string, number>> = {
  util: 0,
  graph: 1,
  io: 2,
  data: 2,
  models: 3,
  lora: 4,
  train: 5,
  infer: 5,
  cli: 6,
  serve: 6,
  web: 6,
  index: 6,
};

export interface AllowedEdge {
  from: string;
  to: string;
  reason: string;
}

/**
 * Imports between folders of the same rank that are allowed, one way each. io and data share nothing
 * (the tokenizer.json builders live in io/), train and infer import nothing of each other, and the
 * CLI and the library entry are separate tops. The one edge: the CLI's `serve` command starts the
 * server (src/serve/), which never imports the CLI.
 */
export const ALLOWED_SAME_RANK: readonly AllowedEdge[] = [
  { from: "cli", to: "serve", reason: "`lora-ts serve` (cli/serve.ts) starts the HTTP server" },
  {
    from: "cli",
    to: "web",
    reason: "`lora-ts web` serves the files the page's protocol names (model files, their URL)",
  },
];

export interface Source {
  /** Relative to the repository root, with "/" separators: "src/io/gguf.ts". */
  path: string;
  text: string;
}

export interface ImportRef {
  file: string;
  line: number;
  specifier: string;
}

export interface FolderImport extends ImportRef {
  from: string;
  to: string;
}

/** Every module specifier of a file: import/export ... from, import type, `import("...")` (values and types), import = require. */
export function importsOf(path: string, text: string): ImportRef[] {
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: ImportRef[] = [];
  const add = (lit: ts.Node | undefined) => {
    if (lit === undefined || !ts.isStringLiteralLike(lit)) return;
    const line = sf.getLineAndCharacterOfPosition(lit.getStart(sf)).line + 1;
    out.push({ file: path, line, specifier: lit.text });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** "src/io/gguf.ts" → "io", "src/graph/rules/shape.ts" → "graph", "src/index.ts" → "index". */
export function folderOf(path: string): string {
  const parts = path.split("/");
  if (parts[0] !== "src" || parts.length < 2) throw new Error(`${path} is not under src/`);
  return parts.length === 2 ? posix.basename(path, ".ts") : parts[1]!;
}

/** The relative imports of src/ files that cross from one src/ folder to another. */
export function folderImports(files: readonly Source[]): FolderImport[] {
  const out: FolderImport[] = [];
  for (const f of files) {
    for (const ref of importsOf(f.path, f.text)) {
      if (!ref.specifier.startsWith(".")) continue; // a package or node: built-in
      const target = posix.normalize(posix.join(posix.dirname(f.path), ref.specifier));
      if (!target.startsWith("src/")) continue; // outside src/ (none today)
      const from = folderOf(f.path);
      const to = folderOf(target);
      if (from !== to) out.push({ ...ref, from, to });
    }
  }
  return out;
}

function describe(i: ImportRef): string {
  return `${i.file}:${i.line} imports "${i.specifier}"`;
}

/** (a) Each import that does not run down the layers, naming the file and the import. */
export function layerViolations(
  imports: readonly FolderImport[],
  ranks: Readonly<Record<string, number>> = RANKS,
  allowed: readonly AllowedEdge[] = ALLOWED_SAME_RANK,
): string[] {
  const out: string[] = [];
  for (const i of imports) {
    const rf = ranks[i.from];
    const rt = ranks[i.to];
    if (rf === undefined || rt === undefined) {
      const missing = rf === undefined ? i.from : i.to;
      out.push(`${describe(i)}: folder "${missing}" is not in the rank table (test/architecture.test.ts)`);
    } else if (rt > rf) {
      out.push(`${describe(i)}: ${i.from} (rank ${rf}) imports ${i.to} (rank ${rt}), up the layers`);
    } else if (rt === rf && !allowed.some((e) => e.from === i.from && e.to === i.to)) {
      out.push(
        `${describe(i)}: ${i.from} and ${i.to} share rank ${rf} and no allowed edge ${i.from} → ${i.to}`,
      );
    }
  }
  return out;
}

/** (b) Each folder cycle, as the folders in order and one import for each step. */
export function folderCycles(imports: readonly FolderImport[]): string[] {
  const edges = new Map<string, Map<string, FolderImport>>();
  for (const i of imports) {
    const m = edges.get(i.from) ?? new Map<string, FolderImport>();
    if (!m.has(i.to)) m.set(i.to, i);
    edges.set(i.from, m);
  }
  const out: string[] = [];
  const reported = new Set<string>();
  for (const start of [...edges.keys()].sort()) {
    // Shortest path from `start` back to itself (breadth-first), if any.
    const prev = new Map<string, FolderImport>();
    const queue = [start];
    let closing: FolderImport | undefined;
    while (queue.length > 0 && closing === undefined) {
      const at = queue.shift()!;
      for (const [to, imp] of [...(edges.get(at) ?? new Map<string, FolderImport>())].sort()) {
        if (to === start) {
          closing = imp;
          break;
        }
        if (!prev.has(to)) {
          prev.set(to, imp);
          queue.push(to);
        }
      }
    }
    if (closing === undefined) continue;
    const steps = [closing];
    for (let at = closing.from; at !== start; ) {
      const imp = prev.get(at)!;
      steps.unshift(imp);
      at = imp.from;
    }
    const key = steps
      .map((s) => s.from)
      .sort()
      .join(",");
    if (reported.has(key)) continue;
    reported.add(key);
    out.push(
      `folder cycle ${[...steps.map((s) => s.from), start].join(" → ")}: ${steps.map(describe).join("; ")}`,
    );
  }
  return out;
}

/** Names that hold a model family: `family`, `cfg.family`, `modelType`, `model_type`, `cfg["model_type"]`. */
const FAMILY_NAME = /^(family|modelType|model_type)$/;

function namesFamily(e: ts.Expression): boolean {
  while (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isNonNullExpression(e))
    e = e.expression;
  if (ts.isIdentifier(e)) return FAMILY_NAME.test(e.text);
  if (ts.isPropertyAccessExpression(e)) return FAMILY_NAME.test(e.name.text);
  if (ts.isElementAccessExpression(e) && ts.isStringLiteralLike(e.argumentExpression)) {
    return FAMILY_NAME.test(e.argumentExpression.text);
  }
  return false;
}

/** `undefined` or `null`: comparing with them asks whether a family is given, not which. */
function isNullish(e: ts.Expression): boolean {
  return (ts.isIdentifier(e) && e.text === "undefined") || e.kind === ts.SyntaxKind.NullKeyword;
}

const EQUALITY = new Set([
  ts.SyntaxKind.EqualsEqualsEqualsToken,
  ts.SyntaxKind.ExclamationEqualsEqualsToken,
  ts.SyntaxKind.EqualsEqualsToken,
  ts.SyntaxKind.ExclamationEqualsToken,
]);

/**
 * (c) Each switch on the model family outside src/models/: a comparison with a family value
 * (`cfg.family === "gpt2"`, `modelType !== "llama"`), a `switch` on one, or a membership test
 * (`[...].includes(cfg.modelType)`). Reading the family to look up its record is fine.
 */
export function familySwitches(files: readonly Source[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    if (f.path.startsWith("src/models/")) continue;
    const sf = ts.createSourceFile(f.path, f.text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    const report = (node: ts.Node, what: string) => {
      const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
      const code = node.getText(sf).split("\n")[0]!;
      out.push(`${f.path}:${line} ${what} outside src/models/: ${code}`);
    };
    const visit = (node: ts.Node): void => {
      if (
        ts.isBinaryExpression(node) &&
        EQUALITY.has(node.operatorToken.kind) &&
        (namesFamily(node.left) || namesFamily(node.right)) &&
        !isNullish(node.left) &&
        !isNullish(node.right)
      ) {
        report(node, "compares the model family");
      } else if (ts.isSwitchStatement(node) && namesFamily(node.expression)) {
        report(node, "switches on the model family");
      } else if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        /^(includes|has|indexOf)$/.test(node.expression.name.text) &&
        node.arguments.some(namesFamily)
      ) {
        report(node, "tests the model family");
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}

/**
 * The code of a file with comments and the contents of string and template literals blanked out
 * (offsets and line breaks kept), so a check on it sees code only.
 */
export function codeOnly(path: string, text: string): string {
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const chars = text.replace(/[^\n]/g, " ").split("");
  const keep = (from: number, to: number) => {
    for (let k = from; k < to; k++) chars[k] = text[k]!;
  };
  const visit = (node: ts.Node): void => {
    if (node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode) return;
    const children = node.getChildren(sf);
    if (children.length > 0) {
      for (const c of children) visit(c);
      return;
    }
    const start = node.getStart(sf);
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      node.kind === ts.SyntaxKind.TemplateHead ||
      node.kind === ts.SyntaxKind.TemplateMiddle ||
      node.kind === ts.SyntaxKind.TemplateTail
    ) {
      return; // literal text: blanked
    }
    keep(start, node.end);
  };
  visit(sf);
  return chars.join("");
}

export const LORA_LAYER = "src/lora/layer.ts";
export const LORA_LAYER_MAX_LINES = 120;
/** alpha / r, lora_alpha / cfg.r, alpha / rank, alpha / Math.sqrt(r). */
const SCALING = /\b\w*alpha\w*\s*\/\s*(?:Math\.sqrt\b|[\w.]*\b(?:r|rank)\b)/gi;
/** r * (fin + fout), cfg.r * (a + b), rank * (in + out). */
const PARAM_COUNT = /(?<![\w.])(?:[\w.]*\.)?(?:r|rank)\s*\*\s*\(\s*[\w.]+\s*\+\s*[\w.]+\s*\)/g;

/** (d) The LoRA layer file exists and is short, and no other src/ file computes the scaling or the count. */
export function loraLayerViolations(files: readonly Source[]): string[] {
  const out: string[] = [];
  const layer = files.find((f) => f.path === LORA_LAYER);
  if (layer === undefined) out.push(`${LORA_LAYER} does not exist: the LoRA layer has no file of its own`);
  else {
    const lines = layer.text.replace(/\n$/, "").split("\n").length;
    if (lines > LORA_LAYER_MAX_LINES) {
      out.push(`${LORA_LAYER} has ${lines} lines, more than ${LORA_LAYER_MAX_LINES}`);
    }
  }
  for (const f of files) {
    if (f.path === LORA_LAYER) continue;
    const code = codeOnly(f.path, f.text);
    for (const [re, what] of [
      [SCALING, "the LoRA scaling"],
      [PARAM_COUNT, "the LoRA parameter count"],
    ] as const) {
      for (const m of code.matchAll(re)) {
        const line = code.slice(0, m.index).split("\n").length;
        out.push(`${f.path}:${line} computes ${what} (${m[0]}) outside ${LORA_LAYER}`);
      }
    }
  }
  return out;
}

/** What each folder may import according to the table: every lower rank, plus its allowed edges. */
export function mayImport(
  folder: string,
  ranks: Readonly<Record<string, number>> = RANKS,
  allowed: readonly AllowedEdge[] = ALLOWED_SAME_RANK,
): string[] {
  const r = ranks[folder];
  if (r === undefined) throw new Error(`folder "${folder}" is not in the rank table`);
  const lower = Object.keys(ranks).filter((k) => ranks[k]! < r);
  return [...lower, ...allowed.filter((e) => e.from === folder).map((e) => e.to)];
}

/**
 * Each src/<folder>/README.md must exist and hold a line "May import: a, b, c." (or "May import:
 * nothing.") listing exactly what the rank table allows (folders that do not exist are left out).
 */
export function folderReadmeViolations(
  folders: readonly string[],
  readme: (folder: string) => string | undefined,
): string[] {
  const out: string[] = [];
  for (const folder of folders) {
    const path = `src/${folder}/README.md`;
    const text = readme(folder);
    if (text === undefined) {
      out.push(`${path} is missing: each folder says what it owns and what it may import`);
      continue;
    }
    const m = /^May import: (.*?)\.?$/m.exec(text);
    if (m === null) {
      out.push(`${path} has no line "May import: ..."`);
      continue;
    }
    const said = m[1] === "nothing" ? [] : m[1]!.split(/,\s*/).map((s) => s.replace(/`/g, "").trim());
    const want = mayImport(folder).filter((f) => folders.includes(f));
    const extra = said.filter((f) => !want.includes(f));
    const missing = want.filter((f) => !said.includes(f));
    if (extra.length > 0 || missing.length > 0) {
      out.push(
        `${path}: "May import: ${m[1]}" disagrees with the rank table, which allows ` +
          `${want.join(", ") || "nothing"}` +
          `${extra.length > 0 ? ` (not allowed: ${extra.join(", ")})` : ""}` +
          `${missing.length > 0 ? ` (not listed: ${missing.join(", ")})` : ""}`,
      );
    }
  }
  return out;
}

// ---- the repository

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(REPO_ROOT, dir)).sort()) {
    const rel = `${dir}/${name}`;
    if (statSync(join(REPO_ROOT, rel)).isDirectory()) out.push(...listTs(rel));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

let sources: Source[] | undefined;
function srcFiles(): Source[] {
  sources ??= listTs("src").map((path) => ({ path, text: readFileSync(join(REPO_ROOT, path), "utf8") }));
  return sources;
}

function srcFolders(): string[] {
  return readdirSync(join(REPO_ROOT, "src"))
    .filter((n) => statSync(join(REPO_ROOT, "src", n)).isDirectory())
    .sort();
}

function assertNone(violations: string[], what: string): void {
  assert.ok(violations.length === 0, `${violations.length} ${what}:\n  ${violations.join("\n  ")}`);
}

test("architecture: every src/ import runs down the layers", () => {
  const files = srcFiles();
  assert.ok(files.length > 50, `read ${files.length} src/ files`);
  const imports = folderImports(files);
  assert.ok(imports.length > 100, `found ${imports.length} imports between src/ folders`);
  assertNone(layerViolations(imports), "imports against the layers");
});

test("architecture: the src/ folders form no cycle", () => {
  assertNone(folderCycles(folderImports(srcFiles())), "folder cycles");
});

test("architecture: no file outside src/models/ switches on the model family", () => {
  assertNone(familySwitches(srcFiles()), "family switches outside src/models/");
});

test("architecture: the LoRA layer is src/lora/layer.ts (at most 120 lines), the only home of the scaling and the count", () => {
  assertNone(loraLayerViolations(srcFiles()), "LoRA layer problems");
});

test("architecture: each src/ folder has a README.md that agrees with the rank table", () => {
  const folders = srcFolders();
  for (const f of folders) assert.ok(f in RANKS, `src/${f}/ is not in the rank table`);
  const read = (f: string) => {
    const p = join(REPO_ROOT, "src", f, "README.md");
    return existsSync(p) ? readFileSync(p, "utf8") : undefined;
  };
  assertNone(folderReadmeViolations(folders, read), "folder README problems");
});

// ---- the checks themselves, on fixture trees

const GOOD: Source[] = [
  { path: "src/util/errors.ts", text: "export class E extends Error {}\n" },
  {
    path: "src/graph/ir.ts",
    text: [
      'import { E } from "../util/errors.js";',
      '// import { x } from "../lora/layer.js";  (a comment is not an import)',
      'const s = "import(\\"../cli/main.js\\")"; // nor is a string',
      "export const g = E;",
    ].join("\n"),
  },
  { path: "src/graph/rules/shape.ts", text: 'import { g } from "../ir.js";\nexport const r = g;\n' },
  {
    path: "src/models/family.ts",
    text: 'import { g } from "../graph/ir.js";\nexport const embed = (cfg: { family: string }) => cfg.family === "gpt2" ? "wte" : "embed";\n',
  },
  {
    path: "src/lora/layer.ts",
    text: "export function scaling(alpha: number, r: number, rs: boolean) {\n  return rs ? alpha / Math.sqrt(r) : alpha / r;\n}\n",
  },
  {
    path: "src/lora/inject.ts",
    text: [
      'import { scaling } from "./layer.js";',
      'import type { Family } from "../models/family.js";',
      "/** s = alpha / r (see layer.ts) */",
      'const help = "scale by alpha/sqrt(r)";',
      "const table: Record<string, number> = {};",
      "export const lookup = (cfg: { family: string }) => table[cfg.family];",
    ].join("\n"),
  },
  {
    path: "src/train/trainer.ts",
    text: 'const m = await import("../lora/inject.js");\nexport type T = import("../models/family.js").Family;\n',
  },
  { path: "src/infer/generate.ts", text: 'export * from "../lora/layer.js";\n' },
  {
    path: "src/cli/main.ts",
    text: 'import { t } from "../train/trainer.js";\nimport { Command } from "commander";\n',
  },
  {
    path: "src/index.ts",
    text: 'export { scaling } from "./lora/layer.js";\nexport { readFileSync } from "node:fs";\n',
  },
];

test("architecture checks: the import parser sees static, type, re-export and dynamic imports, and no comments or strings", () => {
  const all = GOOD.flatMap((f) => importsOf(f.path, f.text).map((i) => `${i.file}:${i.line} ${i.specifier}`));
  assert.deepEqual(all, [
    "src/graph/ir.ts:1 ../util/errors.js",
    "src/graph/rules/shape.ts:1 ../ir.js",
    "src/models/family.ts:1 ../graph/ir.js",
    "src/lora/inject.ts:1 ./layer.js",
    "src/lora/inject.ts:2 ../models/family.js",
    "src/train/trainer.ts:1 ../lora/inject.js",
    "src/train/trainer.ts:2 ../models/family.js",
    "src/infer/generate.ts:1 ../lora/layer.js",
    "src/cli/main.ts:1 ../train/trainer.js",
    "src/cli/main.ts:2 commander",
    "src/index.ts:1 ./lora/layer.js",
    "src/index.ts:2 node:fs",
  ]);
  const edges = folderImports(GOOD).map((i) => `${i.from}→${i.to}`);
  assert.deepEqual(edges, [
    "graph→util",
    "models→graph",
    "lora→models",
    "train→lora",
    "train→models",
    "infer→lora",
    "cli→train",
    "index→lora",
  ]);
});

test("architecture checks: a tree that keeps the rules passes every check", () => {
  const imports = folderImports(GOOD);
  assert.deepEqual(layerViolations(imports), []);
  assert.deepEqual(folderCycles(imports), []);
  assert.deepEqual(familySwitches(GOOD), []);
  assert.deepEqual(loraLayerViolations(GOOD), []);
});

test("architecture checks: each broken rule fails, naming the file and the import", () => {
  const bad: Source[] = [
    ...GOOD.filter((f) => f.path !== "src/lora/layer.ts"),
    { path: "src/io/hf-model.ts", text: 'import { parse } from "../models/family.js";\n' },
    { path: "src/models/load.ts", text: 'import type { W } from "../io/hf-model.js";\n' },
    { path: "src/train/graph.ts", text: 'const s = await import("../infer/generate.js");\n' },
    { path: "src/index.ts", text: 'export { runDemo } from "./cli/demo.js";\n' },
    { path: "src/widgets/w.ts", text: 'import { g } from "../graph/ir.js";\n' },
    {
      path: "src/cli/info.ts",
      text: 'export function arch(c: { family: string }) {\n  switch (c.family) {\n    case "gpt2": return 1;\n  }\n  return 0;\n}\n',
    },
    {
      path: "src/train/train-graph.ts",
      text: [
        "export const embed = (m: { config: { family: string; modelType: string } }) =>",
        '  m.config.family === "gpt2" ? "wte" : "embed";',
        'export const isLlama = (modelType: string) => "llama" !== modelType;',
        "export const given = (o: { modelType?: string }) => o.modelType === undefined || o.modelType != null;",
        'export const known = (c: { model_type: string }) => ["llama", "qwen2"].includes(c.model_type);',
      ].join("\n"),
    },
    {
      path: "src/lora/merge.ts",
      text: "export const s = (cfg: { lora_alpha: number; r: number }) =>\n  cfg.lora_alpha / cfg.r;\n",
    },
    {
      path: "src/lora/serve.ts",
      text: "export const s = (alpha: number, r: number) => alpha / Math.sqrt(r);\n",
    },
    {
      path: "src/lora/targets.ts",
      text: "export const n = (cfg: { r: number }, fin: number, fout: number) => cfg.r * (fin + fout);\n",
    },
  ];
  const imports = folderImports(bad);
  assert.deepEqual(layerViolations(imports), [
    'src/io/hf-model.ts:1 imports "../models/family.js": io (rank 2) imports models (rank 3), up the layers',
    'src/train/graph.ts:1 imports "../infer/generate.js": train and infer share rank 5 and no allowed edge train → infer',
    'src/index.ts:1 imports "./cli/demo.js": index and cli share rank 6 and no allowed edge index → cli',
    'src/widgets/w.ts:1 imports "../graph/ir.js": folder "widgets" is not in the rank table (test/architecture.test.ts)',
  ]);
  // A declared one-way edge lets that direction through, and only that one.
  const allowed = [{ from: "train", to: "infer", reason: "test" }];
  const withEdge = layerViolations(imports, RANKS, allowed);
  assert.ok(!withEdge.some((v) => v.startsWith("src/train/graph.ts")));
  assert.equal(withEdge.length, 3);
  const back = folderImports([{ path: "src/infer/x.ts", text: 'import "../train/graph.js";\n' }]);
  assert.equal(layerViolations(back, RANKS, allowed).length, 1);

  assert.deepEqual(folderCycles(imports), [
    'folder cycle io → models → io: src/io/hf-model.ts:1 imports "../models/family.js"; src/models/load.ts:1 imports "../io/hf-model.js"',
  ]);
  assert.deepEqual(familySwitches(bad), [
    "src/cli/info.ts:2 switches on the model family outside src/models/: switch (c.family) {",
    'src/train/train-graph.ts:2 compares the model family outside src/models/: m.config.family === "gpt2"',
    'src/train/train-graph.ts:3 compares the model family outside src/models/: "llama" !== modelType',
    'src/train/train-graph.ts:5 tests the model family outside src/models/: ["llama", "qwen2"].includes(c.model_type)',
  ]);
  assert.deepEqual(loraLayerViolations(bad), [
    "src/lora/layer.ts does not exist: the LoRA layer has no file of its own",
    "src/lora/merge.ts:2 computes the LoRA scaling (lora_alpha / cfg.r) outside src/lora/layer.ts",
    "src/lora/serve.ts:1 computes the LoRA scaling (alpha / Math.sqrt) outside src/lora/layer.ts",
    "src/lora/targets.ts:1 computes the LoRA parameter count (cfg.r * (fin + fout)) outside src/lora/layer.ts",
  ]);
  const long = { path: LORA_LAYER, text: "export const x = 1;\n".repeat(121) };
  assert.deepEqual(loraLayerViolations([long]), [`${LORA_LAYER} has 121 lines, more than 120`]);
  assert.deepEqual(
    loraLayerViolations([{ path: LORA_LAYER, text: "export const x = 1;\n".repeat(120) }]),
    [],
  );
});

test("architecture checks: folder READMEs must list exactly what the rank table allows", () => {
  const folders = ["util", "graph", "io", "data"];
  const readmes: Record<string, string> = {
    util: "# util\nMay import: nothing.\n",
    graph: "# graph\nMay import: `util`.\n",
    io: "# io\nMay import: util, graph, data.\n",
  };
  assert.deepEqual(
    folderReadmeViolations(folders, (f) => readmes[f]),
    [
      'src/io/README.md: "May import: util, graph, data" disagrees with the rank table, which allows util, graph (not allowed: data)',
      "src/data/README.md is missing: each folder says what it owns and what it may import",
    ],
  );
  assert.deepEqual(mayImport("train"), ["util", "graph", "io", "data", "models", "lora"]);
});
