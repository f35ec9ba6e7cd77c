/**
 * `lora-ts analyze subspace` and `lora-ts analyze amplification`: the two analyses of section 7 of
 * the LoRA paper (Hu et al. 2021). The math is in src/lora/subspace.ts and src/lora/amplification.ts;
 * this file reads the flags and files and prints tables, JSON or the heat-map page (analyze-html.ts).
 * Nothing here writes a model or adapter file.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { hubIdFor } from "../io/hub.js";
import type { Adapter } from "../lora/adapter.js";
import { loadAdapter } from "../lora/adapter-files.js";
import { resolveAdapterPath } from "../lora/adapter-path.js";
import { type AmplificationResult, adapterAmplification } from "../lora/amplification.js";
import { adapterAMatrices, compareAdapterSubspaces } from "../lora/subspace.js";
import { resolveModelPath } from "../models/model-path.js";
import { openModelDir } from "../models/open-model.js";
import { preview } from "../util/describe.js";
import { LoraTsError } from "../util/errors.js";
import { writeSubspaceHtml } from "./analyze-html.js";
import { parseNumber } from "./parse.js";

/** An adapter named by a flag: a folder (or hub id / GGUF adapter, as elsewhere); a missing one is an error naming the flag. */
async function adapterFrom(flag: string, p: string, modelDir?: string): Promise<Adapter> {
  if (p.trim() === "") throw new LoraTsError(`${flag}: empty path`);
  if (!existsSync(p) && !hubIdFor(p)) throw new LoraTsError(`${flag} ${preview(p)}: no such adapter folder`);
  if (existsSync(p) && statSync(p).isDirectory() === false && !p.toLowerCase().endsWith(".gguf"))
    throw new LoraTsError(`${flag} ${preview(p)}: not a folder (give the adapter's folder)`);
  const dir = await resolveAdapterPath(p, modelDir !== undefined ? { modelDir } : {});
  try {
    return loadAdapter(dir);
  } catch (e) {
    // The loader's line names the file; the flag says which of the inputs it was.
    if (e instanceof LoraTsError) throw new LoraTsError(`${flag}: ${e.message}`);
    throw e;
  }
}

/** A number for a table: 4 significant digits, exponent form when very large or small. */
function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  if (x === 0) return "0";
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(2) : x.toPrecision(4);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join("  ");
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

interface SubspaceFlags {
  a: string;
  b: string;
  module?: string;
  json?: boolean;
  out?: string;
}

async function runSubspace(f: SubspaceFlags): Promise<void> {
  if (f.module !== undefined && f.module.trim() === "") throw new LoraTsError("--module: empty name");
  if (f.out !== undefined) {
    if (f.out.trim() === "") throw new LoraTsError("--out: empty path");
    const parent = dirname(resolve(f.out));
    if (!existsSync(parent))
      throw new LoraTsError(`--out ${preview(f.out)}: folder ${parent} does not exist`);
    if (existsSync(f.out) && statSync(f.out).isDirectory())
      throw new LoraTsError(`--out ${preview(f.out)}: is a folder (give a file name, e.g. subspace.html)`);
  }
  const a = await adapterFrom("--a", f.a);
  const b = await adapterFrom("--b", f.b);
  const cmp = compareAdapterSubspaces(a, b, { module: f.module });
  if (
    f.module !== undefined &&
    cmp.modules.length + cmp.onlyA.length + cmp.onlyB.length + cmp.skipped.length === 0
  ) {
    const all = [...new Set([...adapterAMatrices(a).keys(), ...adapterAMatrices(b).keys()])];
    const shorts = [...new Set(all.map((p) => p.split(".").pop()!))];
    throw new LoraTsError(
      `--module ${preview(f.module)}: no module of --a or --b matches (adapted: ${shorts.join(", ") || "none"}; give a short name or a full path)`,
    );
  }
  if (cmp.modules.length === 0) {
    const why = [
      cmp.onlyA.length > 0 ? `only in --a: ${cmp.onlyA.join(", ")}` : "",
      cmp.onlyB.length > 0 ? `only in --b: ${cmp.onlyB.join(", ")}` : "",
      ...cmp.skipped.map((s) => `${s.path}: ${s.reason}`),
    ].filter((s) => s !== "");
    throw new LoraTsError(`no module is adapted in both --a and --b with comparable A (${why.join("; ")})`);
  }
  const notes = [
    ...(cmp.onlyA.length > 0 ? [`only in --a, not compared: ${cmp.onlyA.join(", ")}`] : []),
    ...(cmp.onlyB.length > 0 ? [`only in --b, not compared: ${cmp.onlyB.join(", ")}`] : []),
    ...cmp.skipped.map((s) => `not compared: ${s.path}: ${s.reason}`),
  ];
  if (f.out !== undefined) writeSubspaceHtml(f.out, cmp, { a: f.a, b: f.b });
  if (f.json) {
    const json: Record<string, unknown> = {};
    for (const m of cmp.modules) {
      json[m.path] = {
        kind: m.kind,
        d: m.d,
        r1: m.r1,
        r2: m.r2,
        phi: m.phi,
        mean: m.mean,
        chance_mean: m.chanceMean,
        ...(m.note ? { note: m.note } : {}),
      };
    }
    process.stdout.write(`${JSON.stringify(json)}\n`);
    // stdout stays one JSON document; what was not compared still shows.
    for (const n of notes) process.stderr.write(`note: ${n}\n`);
    if (f.out !== undefined) process.stderr.write(`wrote ${f.out}\n`);
    return;
  }
  process.stdout.write(
    "φ(i, j) = ‖U_iᵀU_j‖²_F / min(i, j): top-i right singular vectors of --a's A vs top-j of --b's\n" +
      "(1 = the smaller subspace lies in the larger; two random subspaces give max(i, j)/d: 'chance')\n\n",
  );
  const rows = cmp.modules.map((m) => {
    const k1 = m.phi.length;
    const k2 = m.phi[0]!.length;
    return [
      m.path + (m.note ? " *" : ""),
      String(m.d),
      `${m.r1}×${m.r2}`,
      m.phi[0]![0]!.toFixed(3),
      m.phi[Math.min(k1, 4) - 1]![Math.min(k2, 4) - 1]!.toFixed(3),
      m.phi[k1 - 1]![k2 - 1]!.toFixed(3),
      m.mean.toFixed(3),
      m.chanceMean.toFixed(3),
    ];
  });
  process.stdout.write(
    table(["module", "d", "r₁×r₂", "φ(1,1)", "φ(≤4,≤4)", "φ(r₁,r₂)", "mean φ", "chance"], rows),
  );
  for (const m of cmp.modules) if (m.note) process.stdout.write(`* ${m.path}: ${m.note}\n`);
  for (const n of notes) process.stdout.write(`${n}\n`);
  if (f.out !== undefined) process.stdout.write(`wrote ${f.out}\n`);
}

interface AmplificationFlags {
  model: string;
  adapter: string;
  module?: string;
  seed: string;
  wTop?: boolean;
  json?: boolean;
}

function amplificationJson(rs: AmplificationResult[]): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const m of rs) {
    json[m.path] = {
      kind: m.kind,
      r: m.r,
      rank: m.rank,
      in: m.in,
      out: m.out,
      scaling: m.scaling,
      w_norm: m.wNorm,
      delta_norm: m.deltaNorm,
      proj_norm: m.projNorm,
      factor: m.factor,
      random_proj_norm: m.randomProjNorm,
      random_expected: m.randomExpected,
      ...(m.wTopNorm !== undefined ? { w_top_norm: m.wTopNorm } : {}),
      ...(m.note ? { note: m.note } : {}),
    };
  }
  return json;
}

async function runAmplification(f: AmplificationFlags): Promise<void> {
  const seed = parseNumber("--seed", f.seed, { integer: true, min: 0 });
  if (f.module !== undefined && f.module.trim() === "") throw new LoraTsError("--module: empty name");
  if (f.model.trim() === "") throw new LoraTsError("--model: empty path");
  if (!existsSync(f.model) && !hubIdFor(f.model))
    throw new LoraTsError(`--model ${preview(f.model)}: no such model folder or file`);
  const dir = await resolveModelPath(f.model);
  const model = openModelDir(dir); // read only: weights are read, never written
  try {
    const adapter = await adapterFrom("--adapter", f.adapter, dir);
    const rs = adapterAmplification(model, adapter, { module: f.module, seed, wTop: f.wTop });
    if (rs.length === 0 && f.module === undefined)
      throw new LoraTsError(`--adapter ${preview(f.adapter)}: adapts no module of this model`);
    if (rs.length === 0) {
      const paths = [...adapterAMatrices(adapter).keys()];
      const shorts = [...new Set(paths.map((p) => p.split(".").pop()!))];
      throw new LoraTsError(
        `--module ${preview(f.module ?? "")}: the adapter adapts no such module (adapted: ${shorts.join(", ")}; give a short name or a full path)`,
      );
    }
    if (f.json) {
      process.stdout.write(`${JSON.stringify(amplificationJson(rs))}\n`);
      return;
    }
    process.stdout.write(
      "ΔW = s·B·A with top-r singular vectors U, V; W projected onto them: ‖UᵀWV‖_F.\n" +
        "factor = ‖ΔW‖_F / ‖UᵀWV‖_F (large: ΔW amplifies directions W hardly uses);\n" +
        "random: ‖UᵀWV‖_F for r random orthonormal directions (expected ‖W‖_F·r/√(in·out))\n\n",
    );
    const header = ["module", "r", "‖W‖_F", "‖ΔW‖_F", "‖UᵀWV‖_F", "factor", "random", "expected"];
    if (f.wTop) header.push("W top-r");
    const rows = rs.map((m) => {
      const row = [
        m.path + (m.note ? " *" : ""),
        String(m.rank === m.r ? m.r : `${m.rank}/${m.r}`),
        fmt(m.wNorm),
        fmt(m.deltaNorm),
        fmt(m.projNorm),
        fmt(m.factor),
        fmt(m.randomProjNorm),
        fmt(m.randomExpected),
      ];
      if (f.wTop) row.push(fmt(m.wTopNorm));
      return row;
    });
    process.stdout.write(table(header, rows));
    for (const m of rs) if (m.note) process.stdout.write(`* ${m.path}: ${m.note}\n`);
  } finally {
    model.weights.close();
  }
}

export function registerAnalyze(program: Command): void {
  const analyze = program
    .command("analyze")
    .description("analyses of adapters from section 7 of the LoRA paper: subspace similarity, amplification");

  analyze
    .command("subspace")
    .summary("φ(i, j) between the A subspaces of two adapters (LoRA §7.2)")
    .description(
      "normalized subspace similarity φ(i, j) = ‖U_iᵀU_j‖²_F / min(i, j) between the top-i right singular " +
        "vectors of one adapter's A and the top-j of another's, per module adapted in both (LoRA §7.2). " +
        "The vectors live in the module's input space: a linear layer's in features, an embedding's vocabulary " +
        "(lora_embedding_A is [r, vocab]). Random subspaces give max(i, j)/d on average.",
    )
    .requiredOption("--a <dir>", "first PEFT adapter folder (its A gives i = 1..r₁)")
    .requiredOption("--b <dir>", "second PEFT adapter folder (j = 1..r₂); the same base model")
    .option("--module <name>", "only modules with this short name (q_proj) or full path")
    .option("--json", "print {module: {r1, r2, phi: [[…]], …}} (φ[i-1][j-1])")
    .option("--out <file.html>", "also write a self-contained HTML page with one heat map per module")
    .action(async (f: SubspaceFlags) => runSubspace(f));

  analyze
    .command("amplification")
    .summary("‖ΔW‖_F / ‖UᵀWV‖_F against random directions (LoRA §7.3)")
    .description(
      "how much ΔW = s·B·A amplifies directions of the base weight W (LoRA §7.3): ‖ΔW‖_F, ‖UᵀWV‖_F with " +
        "ΔW's top-r singular vectors U, V, the factor ‖ΔW‖_F / ‖UᵀWV‖_F, and the same projection onto r " +
        "random directions. Weights are taken as [out, in] (Conv1D transposed; an embedding E as Eᵀ). " +
        "The model is only read.",
    )
    .requiredOption(
      "--model <dir>",
      "base model directory, .gguf file or hub id org/name[@revision] (only read)",
    )
    .requiredOption("--adapter <dir>", "PEFT adapter folder, GGUF LoRA adapter or hub id")
    .option("--module <name>", "only modules with this short name (q_proj) or full path")
    .option("--seed <n>", "seed of the random directions", "0")
    .option(
      "--w-top",
      "also W's own top-r directions, √(σ₁² + … + σ_r²) (an SVD of each W: slow on big models)",
    )
    .option("--json", "print {module: {r, w_norm, delta_norm, proj_norm, factor, random_proj_norm, …}}")
    .action(async (f: AmplificationFlags) => runAmplification(f));
}
