/**
 * Runs a test body against a mock hub (mock-hub.ts) with a fresh hub cache and lora-ts cache, and
 * the hub's environment variables set to `env` only; restores them afterwards.
 */
import assert from "node:assert/strict";
import { LoraTsError } from "../../src/util/errors.js";
import { tempDir } from "../models/fixtures.js";

const HUB_VARS = [
  "HF_ENDPOINT",
  "HF_HUB_CACHE",
  "HF_HOME",
  "HF_TOKEN",
  "HF_HUB_OFFLINE",
  "HUGGING_FACE_HUB_TOKEN",
  "LORA_TS_CACHE",
];

export async function withHubEnv<T>(
  url: string,
  env: Record<string, string>,
  fn: (cache: string) => Promise<T>,
): Promise<T> {
  const saved = Object.fromEntries(HUB_VARS.map((k) => [k, process.env[k]]));
  const cache = env["HF_HUB_CACHE"] ?? tempDir("lora-ts-hub-");
  for (const k of HUB_VARS) delete process.env[k];
  Object.assign(
    process.env,
    {
      HF_ENDPOINT: url,
      HF_HUB_CACHE: cache,
      HF_HOME: tempDir("lora-ts-hf-home-"),
      LORA_TS_CACHE: tempDir("lora-ts-cache-"),
    },
    env,
  );
  try {
    return await fn(cache);
  } finally {
    for (const k of HUB_VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

/** Awaits `p`, which must fail with a one-line LoraTsError containing every part; returns the message. */
export async function oneLineError(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<string> {
  const e = await p.then(
    () => assert.fail("expected an error"),
    (err: unknown) => err,
  );
  assert.ok(e instanceof LoraTsError, `not a LoraTsError: ${(e as Error)?.stack}`);
  assert.ok(!e.message.includes("\n"), `not one line: ${e.message}`);
  for (const part of parts) {
    if (typeof part === "string") assert.ok(e.message.includes(part), `"${part}" not in: ${e.message}`);
    else assert.match(e.message, part);
  }
  return e.message;
}
