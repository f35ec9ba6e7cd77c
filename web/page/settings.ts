/**
 * The settings form: filled from WEB_DEFAULTS (the CLI's defaults) or the demo's values, and read back
 * as WebTrainSettings with each field checked (a bad field is one line naming it).
 */
import { WEB_DEFAULTS, type WebTrainSettings } from "../../src/web/protocol.js";
import { byId } from "./dom.js";

/** The embedded demo's settings (`lora-ts demo`). */
export const DEMO_SETTINGS: WebTrainSettings = {
  r: 8,
  alpha: 16,
  dropout: 0.05,
  targets: "all-linear",
  lr: 3e-3,
  steps: 40,
  maxLength: 64,
  batchSize: 16,
  seed: 0,
  schedule: "cosine",
  warmupSteps: 10,
};

interface Field {
  key: keyof WebTrainSettings;
  id: string;
  label: string;
  kind: "int" | "number" | "text" | "schedule";
  min?: number;
  max?: number;
}

const FIELDS: Field[] = [
  { key: "r", id: "set-r", label: "r", kind: "int", min: 1 },
  { key: "alpha", id: "set-alpha", label: "alpha", kind: "number", min: 0 },
  { key: "dropout", id: "set-dropout", label: "dropout", kind: "number", min: 0, max: 0.999 },
  { key: "targets", id: "set-targets", label: "targets", kind: "text" },
  { key: "lr", id: "set-lr", label: "learning rate", kind: "number", min: 0 },
  { key: "steps", id: "set-steps", label: "steps", kind: "int", min: 1 },
  { key: "maxLength", id: "set-max-length", label: "max length", kind: "int", min: 2 },
  { key: "batchSize", id: "set-batch-size", label: "batch size", kind: "int", min: 1 },
  { key: "seed", id: "set-seed", label: "seed", kind: "int", min: 0 },
  { key: "schedule", id: "set-schedule", label: "schedule", kind: "schedule" },
  { key: "warmupSteps", id: "set-warmup", label: "warm-up steps", kind: "int", min: 0 },
];

export function writeSettings(s: WebTrainSettings): void {
  for (const f of FIELDS) byId<HTMLInputElement | HTMLSelectElement>(f.id).value = String(s[f.key]);
}

export function defaultSettings(): void {
  writeSettings(WEB_DEFAULTS);
}

/** The form's settings; throws one line naming the first bad field. */
export function readSettings(): WebTrainSettings {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) {
    const text = byId<HTMLInputElement | HTMLSelectElement>(f.id).value.trim();
    if (f.kind === "text") {
      out[f.key] = text;
      continue;
    }
    if (f.kind === "schedule") {
      if (text !== "linear" && text !== "cosine" && text !== "constant")
        throw new Error(`${f.label}: expected linear, cosine or constant, got ${JSON.stringify(text)}`);
      out[f.key] = text;
      continue;
    }
    const n = Number(text);
    const kind = f.kind === "int" ? "an integer" : "a number";
    if (text === "" || !Number.isFinite(n) || (f.kind === "int" && !Number.isInteger(n)))
      throw new Error(`${f.label}: expected ${kind}, got ${JSON.stringify(text)}`);
    if (f.min !== undefined && n < f.min)
      throw new Error(`${f.label}: expected ${kind} >= ${f.min}, got ${text}`);
    if (f.max !== undefined && n > f.max)
      throw new Error(`${f.label}: expected ${kind} <= ${f.max}, got ${text}`);
    out[f.key] = n;
  }
  return out as unknown as WebTrainSettings;
}
