/**
 * Starts `lora-ts web` (the compiled binary beside these tests) in a child process and waits for its
 * one line `listening on http://HOST:PORT`; plus a raw GET that sends the path as written (fetch and
 * URL would normalize "..").
 */
import { request } from "node:http";
import { type ServerProcess, startListening } from "../helpers/listening.js";

export type WebProcess = ServerProcess;

/** `lora-ts web --port 0 ARGS`, once it listens. */
export function startWeb(args: string[] = []): Promise<WebProcess> {
  return startListening("web", args, { timeoutMs: 30_000 });
}

/** GET `path` exactly as written; the status, headers and body length. */
export function rawGet(
  base: string,
  path: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; bytes: number }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: "GET" }, (res) => {
      let bytes = 0;
      res.on("data", (d: Buffer) => {
        bytes += d.length;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }));
    });
    req.on("error", reject);
    req.end();
  });
}
