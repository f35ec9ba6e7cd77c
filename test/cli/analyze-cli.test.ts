/**
 * `lora-ts analyze subspace` and `lora-ts analyze amplification` from the command line, on random
 * adapters for the embedded default model: the table, --json, the HTML heat maps, modules adapted in
 * one adapter only, and one-line errors for bad flags and missing folders.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { runCli } from "../helpers/cli.js";
import { fileHashes } from "../helpers/file-hashes.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";
import { tempDir } from "../models/fixtures.js";

const root = tempDir("lora-ts-analyze-");
const a8 = join(root, "a8"); // r = 8 on q_proj, v_proj
const b4 = join(root, "b4"); // r = 4 on q_proj, k_proj
writeRandomAdapter(DEFAULT_MODEL_DIR, a8, {
  seed: 1,
  r: 8,
  lora_alpha: 16,
  target_modules: ["q_proj", "v_proj"],
});
writeRandomAdapter(DEFAULT_MODEL_DIR, b4, {
  seed: 2,
  r: 4,
  lora_alpha: 8,
  target_modules: ["q_proj", "k_proj"],
});
const layers = [0, 1, 2, 3];
const q = layers.map((l) => `model.layers.${l}.self_attn.q_proj`);
const v = layers.map((l) => `model.layers.${l}.self_attn.v_proj`);
const k = layers.map((l) => `model.layers.${l}.self_attn.k_proj`);

function oneLineError(r: { code: number | null; stderr: string }, ...mention: string[]): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^error:/);
  for (const m of mention) assert.ok(lines[0]!.includes(m), `"${lines[0]}" does not mention ${m}`);
}

test("analyze subspace: a table of the shared modules; the others are reported", () => {
  const r = runCli(["analyze", "subspace", "--a", a8, "--b", b4]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  for (const p of q)
    assert.ok(
      lines.some((l) => l.startsWith(p) && l.includes("8×4")),
      `${p} in\n${r.stdout}`,
    );
  const onlyA = lines.find((l) => l.startsWith("only in --a"));
  const onlyB = lines.find((l) => l.startsWith("only in --b"));
  for (const p of v) assert.ok(onlyA?.includes(p), `${p} reported`);
  for (const p of k) assert.ok(onlyB?.includes(p), `${p} reported`);
});

test("analyze subspace --json --out: the full φ matrices, and one heat map per module in a self-contained page", () => {
  const html = join(root, "subspace.html");
  const r = runCli(["analyze", "subspace", "--a", a8, "--b", b4, "--json", "--out", html]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as Record<string, { r1: number; r2: number; d: number; phi: number[][] }>;
  assert.deepEqual(Object.keys(json).sort(), [...q].sort());
  for (const m of Object.values(json)) {
    assert.deepEqual([m.r1, m.r2, m.d], [8, 4, 256]);
    assert.equal(m.phi.length, 8);
    for (const row of m.phi) {
      assert.equal(row.length, 4);
      for (const x of row) assert.ok(x >= 0 && x <= 1);
    }
  }
  // Not shared: on stderr, so stdout stays one JSON document.
  for (const p of [...v, ...k]) assert.ok(r.stderr.includes(p), `${p} not reported`);
  const page = readFileSync(html, "utf8");
  assert.equal(page.match(/<svg[^>]*class="heatmap"/g)?.length, 4);
  for (const p of q) assert.ok(page.includes(`<b>${p}</b>`), `${p}'s figure`);
  assert.ok(page.includes("v_proj") && page.includes("k_proj"), "the modules not compared are listed");
  // No network: the only URL is the SVG namespace.
  const urls = (page.match(/https?:\/\/[^"'\s)]+/g) ?? []).filter((u) => u !== "http://www.w3.org/2000/svg");
  assert.deepEqual(urls, []);
  assert.ok(!/<script|<link|src=/.test(page));
});

test("analyze subspace of an adapter against itself: φ = 1 everywhere; --module by short name", () => {
  const r = runCli(["analyze", "subspace", "--a", a8, "--b", a8, "--module", "v_proj", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as Record<string, { phi: number[][] }>;
  assert.deepEqual(Object.keys(json), v);
  for (const m of Object.values(json))
    for (const row of m.phi) for (const x of row) assert.ok(Math.abs(x - 1) < 1e-6);
});

test("analyze subspace: bad flags and folders are one-line errors", () => {
  oneLineError(runCli(["analyze", "subspace", "--a", join(root, "missing"), "--b", b4]), "--a", "missing");
  oneLineError(runCli(["analyze", "subspace", "--a", a8]), "--b");
  oneLineError(runCli(["analyze", "subspace", "--a", a8, "--b", b4, "--out", ""]), "--out");
  oneLineError(
    runCli(["analyze", "subspace", "--a", a8, "--b", b4, "--module", "o_proj"]),
    "--module",
    "o_proj",
  );
  const empty = join(root, "empty");
  mkdirSync(empty);
  oneLineError(runCli(["analyze", "subspace", "--a", a8, "--b", empty]), "empty", "adapter_config.json");
});

test("analyze amplification --json: every adapted module, the factor and the random baseline; the model is only read", () => {
  const before = fileHashes(DEFAULT_MODEL_DIR);
  const r = runCli(["analyze", "amplification", "--model", DEFAULT_MODEL_DIR, "--adapter", a8, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as Record<
    string,
    {
      r: number;
      rank: number;
      in: number;
      out: number;
      scaling: number;
      w_norm: number;
      delta_norm: number;
      proj_norm: number;
      factor: number;
      random_proj_norm: number;
      random_expected: number;
    }
  >;
  assert.deepEqual(Object.keys(json).sort(), [...q, ...v].sort());
  for (const [p, m] of Object.entries(json)) {
    assert.equal(m.r, 8);
    assert.equal(m.rank, 8);
    assert.equal(m.scaling, 2);
    assert.equal(m.in, 256);
    assert.ok(m.delta_norm > 0 && m.proj_norm > 0 && m.w_norm > m.proj_norm, p);
    assert.ok(Math.abs(m.factor - m.delta_norm / m.proj_norm) < 1e-9 * m.factor, p);
    assert.ok(Math.abs(m.random_expected - (m.w_norm * 8) / Math.sqrt(m.in * m.out)) < 1e-9 * m.w_norm, p);
  }
  const table = runCli([
    "analyze",
    "amplification",
    "--model",
    DEFAULT_MODEL_DIR,
    "--adapter",
    a8,
    "--module",
    "q_proj",
    "--w-top",
  ]);
  assert.equal(table.code, 0, table.stderr);
  const rows = table.stdout.split("\n").filter((l) => l.startsWith("model."));
  assert.deepEqual(
    rows.map((l) => l.split(/\s+/)[0]),
    q,
  );
  // The factor column is ‖ΔW‖_F / ‖UᵀWV‖_F of the JSON, to the 4 digits printed.
  const cells = rows[0]!.split(/\s+/);
  assert.ok(table.stdout.includes("W top-r"));
  assert.equal(Number(cells[5]), Number(json[q[0]!]!.factor.toPrecision(4)));
  assert.deepEqual(fileHashes(DEFAULT_MODEL_DIR), before);
  oneLineError(
    runCli(["analyze", "amplification", "--model", DEFAULT_MODEL_DIR, "--adapter", a8, "--seed", "x"]),
    "--seed",
  );
  oneLineError(
    runCli(["analyze", "amplification", "--model", join(root, "nomodel"), "--adapter", a8]),
    "--model",
  );
});
