/**
 * Starts `lora-ts web` (the compiled binary beside these tests) in a child process and waits for its
 * one line `listening on http://HOST:PORT`; plus a raw GET that sends the path as written (fetch and
 * URL would normalize "..").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { request } from "node:http";
import { BIN } from "../helpers/cli.js";

export interface WebProcess {
  url: string;
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGTERM and wait for the exit code (or the signal's name). */
  stop(): Promise<number | string>;
}

export async function startWeb(args: string[] = []): Promise<WebProcess> {
  const proc = spawn(process.execPath, [BIN, "web", "--port", "0", ...args], {
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
    void exited.then((code) => reject(new Error(`lora-ts web exited (${code}) before listening: ${err}`)));
    setTimeout(() => reject(new Error(`lora-ts web did not listen within 30 s: ${err}`)), 30_000).unref();
  });
  return {
    url,
    proc,
    stdout: () => out,
    stderr: () => err,
    stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      return exited;
    },
  };
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
