/**
 * The HTTP server: a fastify app over a GenerationEngine. Every body is checked by its JSON schema
 * (schemas.ts) with Ajv set not to coerce types nor drop unknown fields; every error, fastify's own
 * included (validation, body too large, bad JSON, no such route), is an OpenAI-style body
 * `{"error":{"message","type","param","code"}}` (errors.ts). Hooks, in order: request metrics, the
 * shutdown gate (503 while draining), the API key (auth.ts).
 */
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import { ChatTemplate } from "../data/chat-template.js";
import type { Tokenizer } from "../data/tokenizer.js";
import type { GenerationEngine } from "../infer/engine-types.js";
import type { AdapterRoot } from "./adapter-root.js";
import { bearerCheck, OPEN_PATHS } from "./auth.js";
import { ApiError, oneLine, toApiError } from "./errors.js";
import { ServerMetrics } from "./metrics.js";
import { nowSeconds } from "./openai-format.js";
import type { ModelInfo } from "./protocol.js";
import { adapterRoutes } from "./routes-adapters.js";
import { generateRoutes } from "./routes-generate.js";
import { opsRoutes } from "./routes-ops.js";
import { ServeState } from "./state.js";
import { tokenText } from "./token-text.js";

/** Largest request body (bytes): far above any prompt that fits a context, far below memory trouble. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export interface AppOptions {
  engine: GenerationEngine;
  info: ModelInfo;
  tokenizer: Tokenizer;
  /** The base model's name in requests and /v1/models. */
  baseName: string;
  /** Adapters loaded at start. */
  adapters?: string[];
  apiKey?: string;
  adapterRoot?: AdapterRoot | null;
  bodyLimit?: number;
  healthy?: () => boolean;
}

/** "/messages/0/role" → "messages[0].role". */
function fieldName(instancePath: string): string {
  return instancePath
    .split("/")
    .filter((p) => p !== "")
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join("");
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

function validationError(errors: AjvError[]): ApiError {
  const e = errors.find((x) => x.keyword === "additionalProperties") ?? errors[0]!;
  const field = fieldName(e.instancePath);
  if (e.keyword === "additionalProperties") {
    const extra = String(e.params["additionalProperty"]);
    const where = field === "" ? extra : `${field}.${extra}`;
    return new ApiError(
      400,
      `${where}: unknown field (not part of this endpoint's request)`,
      where,
      "unknown_field",
    );
  }
  if (e.keyword === "required") {
    const missing = String(e.params["missingProperty"]);
    const where = field === "" ? missing : `${field}.${missing}`;
    return new ApiError(400, `${where}: required`, where, "missing_field");
  }
  return new ApiError(400, `${field || "body"}: ${e.message ?? "invalid"}`, field || null, "invalid_value");
}

export function buildApp(opts: AppOptions): { app: FastifyInstance; state: ServeState } {
  const app = Fastify({
    logger: false,
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
    // A streamed answer may take a while; the client's own timeout decides.
    requestTimeout: 0,
  });
  const created = nowSeconds();
  const metrics = new ServerMetrics(() => opts.engine.stats());
  const state = new ServeState(
    opts.engine,
    opts.info,
    opts.tokenizer,
    ChatTemplate.forTokenizer(opts.tokenizer),
    tokenText(opts.tokenizer),
    opts.baseName,
    created,
    metrics,
    opts.adapterRoot ?? null,
    opts.healthy ?? (() => true),
  );
  for (const name of opts.adapters ?? []) state.adapters.set(name, created);
  const checkKey = opts.apiKey === undefined ? null : bearerCheck(opts.apiKey);

  app.addHook("onRequest", async (request, reply) => {
    const endpoint = request.routeOptions.url ?? "unmatched";
    reply.raw.once("close", () => {
      metrics.requests.inc({ endpoint, status: String(reply.raw.statusCode) });
    });
    const path = request.url.split("?")[0]!;
    if (state.draining && path !== "/health")
      throw new ApiError(503, "the server is shutting down", null, "shutting_down");
    if (checkKey && !OPEN_PATHS.has(path)) checkKey(request.headers.authorization);
  });

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    let api: ApiError;
    if (error instanceof ApiError) api = error;
    else if (error.validation) api = validationError(error.validation as AjvError[]);
    else if (typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500)
      api = new ApiError(error.statusCode, oneLine(error), null, error.code ?? null);
    else api = toApiError(error);
    reply.code(api.status).headers(api.headers).send(api.body());
  });
  app.setNotFoundHandler((request, reply) => {
    const api = new ApiError(
      404,
      `no such endpoint: ${request.method} ${request.url.split("?")[0]!.slice(0, 100)}`,
      null,
      "not_found",
    );
    reply.code(404).send(api.body());
  });

  opsRoutes(app, state);
  adapterRoutes(app, state);
  generateRoutes(app, state);
  return { app, state };
}
