/**
 * The static server behind `lora-ts web`: the built page (dist/web, with onnxruntime-web's runtime
 * files under /ort/) at /, and a model folder's files at /models/default/. Every response carries
 * the COOP/COEP headers that make the page cross-origin isolated, so onnxruntime-web may use
 * WebAssembly threads (SharedArrayBuffer).
 *
 * Nothing outside the two roots is served:
 * - the page root: a request path is decoded, refused (403) when a segment is "..", "." or empty or
 *   holds a backslash or NUL, then resolved with realpath and refused when it lands outside the
 *   root's realpath (a symlink leaving the root);
 * - the model root: only the model's files, listed once at start by name (config.json, tokenizer
 *   files, *.safetensors, the shard index, data/*.jsonl) are served, looked up by exact name. A hub
 *   snapshot's files are symlinks into its blobs/ folder; the user named that folder, so they are
 *   followed.
 */
import { createReadStream, existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { type AddressInfo, isIPv6 } from "node:net";
import { extname, join, sep } from "node:path";
import Fastify, { type FastifyReply } from "fastify";
import { LoraTsError } from "../util/errors.js";
import { DEFAULT_MODEL_URL, isModelFileName } from "../web/protocol.js";

export interface WebServerOptions {
  /** The built page folder (dist/web). */
  pageDir: string;
  /** The model folder served at /models/default/. */
  modelDir: string;
  host: string;
  port: number;
}

export interface RunningWebServer {
  /** http://HOST:PORT, with the port actually bound. */
  url: string;
  close(): Promise<void>;
}

/** Headers on every response: cross-origin isolation (WebAssembly threads need it). */
export const ISOLATION_HEADERS = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
} as const;

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".jsonl": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".safetensors": "application/octet-stream",
};

export function contentType(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

/** The URL prefix of the model's files. */
export const MODEL_PREFIX = DEFAULT_MODEL_URL;

/** The model folder's servable files: URL name (e.g. "config.json", "data/persona.jsonl") -> real path. */
export function listModelFiles(modelDir: string): Map<string, string> {
  const files = new Map<string, string>();
  const add = (name: string, path: string) => {
    try {
      const real = realpathSync(path);
      if (statSync(real).isFile()) files.set(name, real);
    } catch {
      // A dangling link: not served.
    }
  };
  for (const name of readdirSync(modelDir)) if (isModelFileName(name)) add(name, join(modelDir, name));
  const data = join(modelDir, "data");
  if (existsSync(data) && statSync(data).isDirectory())
    for (const name of readdirSync(data)) if (name.endsWith(".jsonl")) add(`data/${name}`, join(data, name));
  return files;
}

/**
 * The file under `root` (a realpath) that the URL path `rel` (already decoded, without the leading
 * "/") names, or "forbidden" when it would leave the root, or null when there is none.
 */
export function resolveInside(root: string, rel: string): string | "forbidden" | null {
  const parts = rel.split("/");
  if (parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\\") || p.includes("\0")))
    return "forbidden";
  const path = join(root, ...parts);
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return null;
  }
  if (real !== root && !real.startsWith(root + sep)) return "forbidden";
  try {
    if (!statSync(real).isFile()) return null;
  } catch {
    return null;
  }
  return real;
}

function sendFile(reply: FastifyReply, path: string): FastifyReply {
  const size = statSync(path).size;
  reply.header("content-type", contentType(path)).header("content-length", size);
  reply.header("cache-control", "no-cache");
  // A HEAD request runs this same handler (fastify's HEAD routes); fastify sends no body for it.
  return reply.send(createReadStream(path));
}

export async function startWebServer(opts: WebServerOptions): Promise<RunningWebServer> {
  if (!existsSync(join(opts.pageDir, "index.html")))
    throw new LoraTsError(`the page is not built: ${opts.pageDir} has no index.html (run npm run build)`);
  if (!existsSync(opts.modelDir) || !statSync(opts.modelDir).isDirectory())
    throw new LoraTsError(`--model: ${opts.modelDir}: no such directory`);
  const modelFiles = listModelFiles(opts.modelDir);
  if (!modelFiles.has("config.json"))
    throw new LoraTsError(`--model: ${opts.modelDir} has no config.json (a Hugging Face model folder)`);
  const pageRoot = realpathSync(opts.pageDir);

  // The isolation headers are set on the raw response before fastify sees the request, so that
  // every answer carries them, fastify's own (a URL it cannot decode: 400) included.
  const app = Fastify({
    logger: false,
    serverFactory: (handler) =>
      createServer((req, res) => {
        for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
        handler(req, res);
      }),
  });
  app.setNotFoundHandler((_req, reply) => {
    reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
  });
  app.setErrorHandler((e: { statusCode?: number; message: string }, _req, reply) => {
    const code = e.statusCode !== undefined && e.statusCode >= 400 ? e.statusCode : 500;
    reply
      .code(code)
      .type("text/plain; charset=utf-8")
      .send(`${e.message.split("\n")[0]}\n`);
  });

  app.get("/*", (req, reply) => {
    const rawPath = req.url.split("?")[0]!;
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      return reply.code(400).type("text/plain; charset=utf-8").send("bad request: the path is not valid\n");
    }
    if (path.startsWith(MODEL_PREFIX)) {
      const file = modelFiles.get(path.slice(MODEL_PREFIX.length));
      if (file === undefined) return reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
      return sendFile(reply, file);
    }
    const rel = path === "/" ? "index.html" : path.slice(1);
    const file = resolveInside(pageRoot, rel);
    if (file === "forbidden") return reply.code(403).type("text/plain; charset=utf-8").send("forbidden\n");
    if (file === null) return reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
    return sendFile(reply, file);
  });

  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    await app.close();
    throw new LoraTsError(
      `--host/--port: cannot listen on ${opts.host}:${opts.port}: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  const addr = app.server.address() as AddressInfo;
  const host = isIPv6(addr.address) ? `[${addr.address}]` : addr.address;
  return { url: `http://${host}:${addr.port}`, close: () => app.close() };
}
