/**
 * `--api-key`: every endpoint but /health needs `Authorization: Bearer KEY`. Both the given and the
 * expected key are hashed first, so the constant-time comparison (crypto.timingSafeEqual) runs on
 * equal-length digests and leaks neither the key nor its length.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ApiError } from "./errors.js";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Paths that answer without a key. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(["/health"]);

/** A checker for one key: throws a 401 ApiError unless the header carries it. */
export function bearerCheck(key: string): (authorization: string | undefined) => void {
  const want = digest(key);
  return (authorization) => {
    const m = /^Bearer (.+)$/i.exec(authorization?.trim() ?? "");
    const ok = m !== null && timingSafeEqual(digest(m[1]!.trim()), want);
    if (!ok) {
      throw new ApiError(
        401,
        authorization === undefined
          ? "missing API key: send the header Authorization: Bearer KEY"
          : "invalid API key",
        null,
        "invalid_api_key",
      );
    }
  };
}
