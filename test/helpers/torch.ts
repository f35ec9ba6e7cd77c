/**
 * PyTorch as an independent peer for tests: Debian's /usr/bin/python3 with torch (not a pyenv or pip
 * python). Tests that need it pass `needsTorch` as their skip option, which skips WITH a message when
 * torch is absent. The reference scripts live in test/peers/ and talk JSON over stdin / stdout.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./shared.js";

export const PYTHON = "/usr/bin/python3";

const PROBE = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)";

/** Whether torch is installed for PYTHON, found without importing it (an import costs ~1.5 s of CPU). */
export const HAS_TORCH =
  existsSync(PYTHON) && spawnSync(PYTHON, ["-c", PROBE], { stdio: "ignore" }).status === 0;

/** `false` when /usr/bin/python3 has torch, else the skip message. */
export const needsTorch: string | false = HAS_TORCH ? false : "needs /usr/bin/python3 with torch (absent)";

/** The folder of the Python reference scripts. */
export const PEERS = join(REPO_ROOT, "test/peers");

/**
 * Runs `python3 args...` with `input` on stdin; throws with the script's stderr when it fails.
 * Returns stdout.
 */
export function runPython(args: string[], input = ""): string {
  const r = spawnSync(PYTHON, args, { input, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(" ")} exited ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

/** Runs test/peers/`script` with `request` as JSON on stdin and parses its JSON answer. */
export function runPeer<T>(script: string, request: unknown): T {
  return JSON.parse(runPython([join(PEERS, script)], JSON.stringify(request))) as T;
}
