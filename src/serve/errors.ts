/**
 * Errors as the HTTP side answers them: an ApiError carries the status code and OpenAI's error body
 * `{"error":{"message","type","param","code"}}`; engine errors (EngineError kinds) map onto it here,
 * in one place.
 */
import { EngineError } from "../infer/engine-types.js";

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** OpenAI's `type` for each status code we answer with. */
const TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  409: "invalid_request_error",
  413: "invalid_request_error",
  429: "rate_limit_error",
  500: "server_error",
  503: "server_error",
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (Retry-After for 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): ErrorBody {
    return errorBody(this.status, this.message, this.param, this.code);
  }
}

export function errorBody(
  status: number,
  message: string,
  param: string | null = null,
  code: string | null = null,
): ErrorBody {
  return {
    error: {
      message,
      type: TYPES[status] ?? (status >= 500 ? "server_error" : "invalid_request_error"),
      param,
      code,
    },
  };
}

/** Seconds a client is told to wait after a full queue. */
export const RETRY_AFTER_SECONDS = 1;

/** The status code and body of an engine refusal. */
export function fromEngineError(e: EngineError, param: string | null = null): ApiError {
  switch (e.kind) {
    case "queue_full":
      return new ApiError(429, e.message, null, "queue_full", { "retry-after": String(RETRY_AFTER_SECONDS) });
    case "unknown_adapter":
      return new ApiError(404, e.message, param, "model_not_found");
    case "adapter_exists":
      return new ApiError(409, e.message, param, "adapter_exists");
    case "too_many_adapters":
      return new ApiError(400, e.message, param, "too_many_adapters");
    case "bad_request":
      return new ApiError(400, e.message, param, "bad_request");
    case "closed":
      return new ApiError(503, e.message, null, "unavailable");
  }
}

/** Any error thrown while serving a request as an ApiError (unknown errors are 500s). */
export function toApiError(e: unknown, param: string | null = null): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof EngineError) return fromEngineError(e, param);
  return new ApiError(500, `internal error: ${oneLine(e)}`, null, "internal_error");
}

export function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*[\r\n]+\s*/g, " ");
}
