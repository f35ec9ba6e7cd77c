/** Runs the compiled `lora-ts` binary in a child process. */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The binary built beside these tests (dist/ or a worker's dist-NAME/), not always dist/. */
export const BIN = join(dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");

/** `lora-ts train` of `model` on `data` into `out`, quiet (no progress bar, no report), plus `extra` flags. */
export function runTrain(model: string, data: string, out: string, ...extra: string[]) {
  return runCli([
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    out,
    ...extra,
    "--no-progress",
    "--no-report",
  ]);
}

export function runCli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
