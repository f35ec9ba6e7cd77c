/**
 * `lora-ts sweep --config FILE.yaml`: a train config file (train-config.ts's keys, checked by its
 * schema) plus a `sweep:` section for the grid:
 *
 *     model: models/default
 *     data: train.jsonl
 *     max_steps: 200
 *     sweep:
 *       r: [1, 2, 4, 8, 64]        # or "1,2,4,8,64"
 *       targets: [q_proj, "q_proj,v_proj", [q_proj, k_proj, v_proj, o_proj]]
 *       seeds: 3
 *       budget: 16384              # instead of r
 *       jobs: 1
 *
 * Keys that the sweep sets per run (r, target) belong in the section; resume/force/lora_config/init
 * are refused. Every problem is one line naming the file and the key.
 */
import { z } from "zod";
import { LoraTsError } from "../util/errors.js";
import { readConfigText, type TrainConfig, TrainConfigSchema } from "./train-config.js";

const positiveInt = z.number().int().positive();
const SweepSectionSchema = z
  .object({
    r: z.union([z.array(positiveInt).min(1), z.string(), positiveInt]),
    targets: z.array(z.union([z.string(), z.array(z.string()).min(1)])).min(1),
    seeds: positiveInt,
    budget: positiveInt,
    jobs: positiveInt,
  })
  .partial()
  .strict();

export type SweepSection = z.infer<typeof SweepSectionSchema>;

/** Train keys a sweep does not take in the file, and why. */
export const NOT_IN_SWEEP: Readonly<Record<string, string>> = {
  r: 'the sweep sets r per run: give it as "sweep: r:"',
  target: 'the sweep sets the targets per run: give them as "sweep: targets:"',
  resume: "a sweep resumes by itself (finished runs are skipped)",
  force: "a sweep never replaces finished runs; use a new out folder",
  lora_config: "it fixes r and the targets, which the sweep varies",
  init: "train has no --init flag to pass it to each run",
};

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/\r/g, " ");
}

function zodLine(path: string, prefix: string, error: z.ZodError): string {
  const issue = error.issues[0]!;
  if (issue.code === "unrecognized_keys")
    return `${path}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(`${prefix}${k}`)).join(", ")}`;
  return `${path}: ${prefix}${issue.path.join(".") || "(top level)"}: ${firstLine(issue.message)}`;
}

export function readSweepConfig(path: string): { train: TrainConfig; sweep: SweepSection } {
  const raw = readConfigText(path) ?? {};
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new LoraTsError(`${path}: expected a mapping of keys`);
  const { sweep, ...rest } = raw as Record<string, unknown>;
  for (const [k, why] of Object.entries(NOT_IN_SWEEP))
    if (k in rest) throw new LoraTsError(`${path}: key "${k}" is not for a sweep (${why})`);
  const train = TrainConfigSchema.safeParse(rest);
  if (!train.success) throw new LoraTsError(zodLine(path, "", train.error));
  const section = SweepSectionSchema.safeParse(sweep ?? {});
  if (!section.success) throw new LoraTsError(zodLine(path, "sweep.", section.error));
  return { train: train.data, sweep: section.data };
}
