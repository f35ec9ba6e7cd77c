/**
 * Option parsers shared by the commands: each failure is a one-line LoraTsError. Values are quoted
 * with JSON.stringify, so a line break in one stays on the line.
 */
import { LoraTsError } from "../util/errors.js";

export function parseIds(flag: string, text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const ids = parts.map(Number);
  if (parts.length === 0 || ids.some((n, i) => parts[i] === "" || !Number.isInteger(n) || n < 0)) {
    throw new LoraTsError(`${flag}: expected comma-separated token ids, got ${JSON.stringify(text)}`);
  }
  return ids;
}

/** Token ids must index the model's vocabulary: onnxruntime's Gather would fail with a log line. */
export function checkIdsInVocab(flag: string, ids: readonly number[], vocabSize: number): void {
  const bad = ids.find((id) => id >= vocabSize);
  if (bad !== undefined) throw new LoraTsError(`${flag}: id ${bad} is outside the vocabulary (${vocabSize})`);
}

export function parseNumber(
  flag: string,
  text: string,
  opts: { integer?: boolean; min?: number } = {},
): number {
  const n = Number(text);
  if (
    text.trim() === "" ||
    !Number.isFinite(n) ||
    (opts.integer && !Number.isInteger(n)) ||
    n < (opts.min ?? -Infinity)
  ) {
    const kind = opts.integer ? "an integer" : "a number";
    throw new LoraTsError(
      `${flag}: expected ${kind}${opts.min !== undefined ? ` >= ${opts.min}` : ""}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/** An adapter name as typed when it is a plain word, else quoted (it may hold a line break). */
function shown(name: string): string {
  return /^[\w.-]+$/.test(name) ? name : JSON.stringify(name);
}

export interface AdapterSpec {
  name: string;
  dir: string;
}

/** `--adapter DIR` or `--adapter name=DIR`, repeatable. An unnamed adapter is called "default". */
export function parseAdapterSpecs(values: string[] | undefined): AdapterSpec[] {
  const specs = (values ?? []).map((v) => {
    const eq = v.indexOf("=");
    return eq > 0 ? { name: v.slice(0, eq), dir: v.slice(eq + 1) } : { name: "default", dir: v };
  });
  const names = specs.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup)
    throw new LoraTsError(
      `--adapter: the name ${JSON.stringify(dup)} is given twice (use name=DIR for several adapters)`,
    );
  return specs;
}

/** Which adapter a call uses: --use NAME, "none" for the base model, or the only one loaded. */
export function chooseAdapter(specs: AdapterSpec[], use: string | undefined): string | null {
  if (use === "none" || (use === undefined && specs.length === 0)) return null;
  if (use === undefined) {
    if (specs.length === 1) return specs[0]!.name;
    throw new LoraTsError(
      `several adapters are loaded (${specs.map((s) => shown(s.name)).join(", ")}): choose one with --use`,
    );
  }
  if (!specs.some((s) => s.name === use)) {
    throw new LoraTsError(
      `--use ${shown(use)}: no such adapter (loaded: ${specs.map((s) => shown(s.name)).join(", ") || "none"})`,
    );
  }
  return use;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
