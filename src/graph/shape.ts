import { GraphBuildError } from "../util/errors.js";

/**
 * A dimension is a number, or a symbolic product such as "batch", "batch*seq" or "4*seq".
 * Symbols let one graph serve many batch sizes and sequence lengths; keeping products symbolic
 * lets Reshape([B,T,D] -> [B*T,D] -> [B,T,D]) be checked when the graph is built.
 */
export type Dim = number | string;
export type Shape = Dim[];

interface Monomial {
  coef: number;
  syms: string[]; // sorted, with repeats
}

function parse(d: Dim): Monomial {
  if (typeof d === "number") return { coef: d, syms: [] };
  // A sum ("past+seq") is kept as one opaque symbol.
  if (d.includes("+")) return { coef: 1, syms: [d] };
  let coef = 1;
  const syms: string[] = [];
  for (const part of d.split("*")) {
    const t = part.trim();
    if (/^\d+$/.test(t)) coef *= Number(t);
    else syms.push(t);
  }
  syms.sort();
  return { coef, syms };
}

function format(m: Monomial): Dim {
  if (m.syms.length === 0) return m.coef;
  const s = m.syms.join("*");
  return m.coef === 1 ? s : `${m.coef}*${s}`;
}

export function mulDims(...dims: Dim[]): Dim {
  const out: Monomial = { coef: 1, syms: [] };
  for (const d of dims) {
    const m = parse(d);
    out.coef *= m.coef;
    out.syms.push(...m.syms);
  }
  out.syms.sort();
  return format(out);
}

/** a + b: numbers add; otherwise an opaque symbol "a+b" with its terms sorted. */
export function addDims(...dims: Dim[]): Dim {
  let n = 0;
  const terms: string[] = [];
  for (const d of dims) {
    if (typeof d === "number") n += d;
    else if (d.includes("*") && !d.includes("+")) terms.push(`(${d})`);
    else terms.push(...d.split("+"));
  }
  if (terms.length === 0) return n;
  const symbolic = dims.filter((d) => typeof d === "string");
  if (n === 0 && symbolic.length === 1) return symbolic[0]!;
  if (n !== 0) terms.push(String(n));
  terms.sort();
  return terms.join("+");
}

/** a / b when it divides exactly, else undefined. */
export function divDims(a: Dim, b: Dim): Dim | undefined {
  const ma = parse(a);
  const mb = parse(b);
  if (mb.coef === 0 || ma.coef % mb.coef !== 0) return undefined;
  const syms = [...ma.syms];
  for (const s of mb.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return undefined;
    syms.splice(i, 1);
  }
  return format({ coef: ma.coef / mb.coef, syms });
}

export function dimEq(a: Dim, b: Dim): boolean {
  return format(parse(a)) === format(parse(b));
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEq(d, b[i]!));
}

export function numel(shape: Shape): Dim {
  return mulDims(...shape);
}

export function isStatic(shape: Shape): shape is number[] {
  return shape.every((d) => typeof d === "number");
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Numpy-style broadcasting; a symbolic dim meets 1 or itself, a number meets 1 or itself. */
export function broadcastShapes(op: string, ...shapes: Shape[]): Shape {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = s[s.length - rank + i];
      if (x === undefined || x === 1) continue;
      if (d === 1) d = x;
      else if (!dimEq(d, x)) {
        throw new GraphBuildError(`${op}: cannot broadcast shapes ${shapes.map(fmtShape).join(" and ")}`);
      }
    }
    out.push(d);
  }
  return out;
}

export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new GraphBuildError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}
