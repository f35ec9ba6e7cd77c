/**
 * Starts `lora-ts serve` (the compiled binary beside these tests) in a child process and waits for
 * its one line `listening on http://HOST:PORT`; plus small HTTP helpers for the serve tests.
 */
import { type ServerProcess, startListening } from "../helpers/listening.js";

export type { ServerProcess } from "../helpers/listening.js";

/** `lora-ts serve --port 0 ARGS`, once it listens. */
export function startServe(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<ServerProcess> {
  return startListening("serve", args, { env, cwd });
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
