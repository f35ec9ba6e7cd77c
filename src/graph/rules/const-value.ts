import { GraphBuildError } from "../../util/errors.js";
import type { Value } from "../ir.js";

/** The integer contents of a constant input (axes, sizes...), which rules need when the graph is built. */
export function constInts(v: Value | null): number[] {
  const src = v ? v.graph.initializers.get(v) : undefined;
  if (src?.kind !== "data") throw new GraphBuildError(`autodiff: expected a constant, got ${v}`);
  return Array.from(src.data as ArrayLike<number | bigint>, (x) => Number(x));
}

export function intAttr(
  node: { attrs: Record<string, { kind: string; v: unknown }> },
  name: string,
  dflt: number,
): number {
  const a = node.attrs[name];
  return a ? (a.v as number) : dflt;
}
