/**
 * Starts `lora-ts serve` (the compiled binary beside these tests) in a child process and waits for
 * its one line `listening on http://HOST:PORT`; plus small HTTP helpers for the serve tests.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { BIN } from "../helpers/cli.js";

export interface ServerProcess {
  url: string;
  proc: ChildProcess;
  /** Everything the server wrote to stdout and stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | string>;
}

export async function startServe(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [BIN, "serve", "--port", "0", ...args], {
    env: { ...process.env, ...env },
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^listening on (http:\/\/\S+)\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${err}`)));
    setTimeout(() => reject(new Error(`serve did not listen within 60 s: ${err}`)), 60_000).unref();
  });
  return {
    url,
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      return exited;
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON of any shape; the tests assert on it.
type Json = any;

/** POST a JSON body; the status, headers and parsed body (or text). */
export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Json }> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: r.status, headers: r.headers, body: parsed };
}

/** Asserts an OpenAI-style error body and returns its `error` object. */
export function errorOf(body: Json): {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
} {
  if (typeof body !== "object" || body === null || typeof body.error?.message !== "string")
    throw new Error(`not an OpenAI error body: ${JSON.stringify(body)}`);
  const e = body.error;
  for (const k of ["type", "param", "code"])
    if (!(k in e)) throw new Error(`error body lacks ${k}: ${JSON.stringify(body)}`);
  if (e.message.includes("\n")) throw new Error(`error message on several lines: ${e.message}`);
  return e;
}
