/**
 * A lora-ts command that serves HTTP (`serve`, `web`), started as a child process with `--port 0`:
 * resolves once it prints its one `listening on http://HOST:PORT` line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { BIN } from "./cli.js";

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

export async function startListening(
  command: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [BIN, command, "--port", "0", ...args], {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
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
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^listening on (http:\/\/\S+)\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`${command} exited (${code}) before listening: ${err}`)));
    setTimeout(
      () => reject(new Error(`${command} did not listen within ${timeoutMs / 1000} s: ${err}`)),
      timeoutMs,
    ).unref();
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
