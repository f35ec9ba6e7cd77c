/**
 * The live loss curve: an SVG line chart drawn by hand (axes, ticks, labels), redrawn on each step.
 * The losses are also kept on the container as `data-losses` (JSON, index = step - 1), so that they
 * can be read back exactly.
 */
const NS = "http://www.w3.org/2000/svg";
const W = 720;
const H = 260;
const PAD = { left: 58, right: 16, top: 14, bottom: 40 };

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

export class LossChart {
  /** Loss by step (1-based); a resumed run fills in after the stop. */
  private readonly losses = new Map<number, number>();
  private totalSteps = 0;

  constructor(private readonly container: HTMLElement) {
    this.draw();
  }

  reset(totalSteps: number): void {
    this.losses.clear();
    this.totalSteps = totalSteps;
    this.draw();
  }

  add(step: number, loss: number, totalSteps: number): void {
    this.losses.set(step, loss);
    this.totalSteps = totalSteps;
    this.draw();
  }

  /** The losses in step order. */
  values(): number[] {
    return [...this.losses.entries()].sort((a, b) => a[0] - b[0]).map(([, l]) => l);
  }

  private draw(): void {
    const points = [...this.losses.entries()].sort((a, b) => a[0] - b[0]);
    this.container.dataset["losses"] = JSON.stringify(points.map(([, l]) => l));
    const root = svg("svg", {
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-label": "training loss by step",
    });
    root.append(svg("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff" }));
    const x0 = PAD.left;
    const x1 = W - PAD.right;
    const y0 = H - PAD.bottom;
    const y1 = PAD.top;
    const finite = points.filter(([, l]) => Number.isFinite(l));
    const maxStep = Math.max(this.totalSteps, finite.length > 0 ? finite[finite.length - 1]![0] : 1, 1);
    let lo = Math.min(...finite.map(([, l]) => l));
    let hi = Math.max(...finite.map(([, l]) => l));
    if (finite.length === 0) {
      lo = 0;
      hi = 1;
    } else if (hi - lo < 1e-6) {
      lo -= 0.5;
      hi += 0.5;
    } else {
      const margin = (hi - lo) * 0.06;
      lo -= margin;
      hi += margin;
    }
    const sx = (s: number) => x0 + ((s - 1) / Math.max(maxStep - 1, 1)) * (x1 - x0);
    const sy = (l: number) => y0 - ((l - lo) / (hi - lo)) * (y0 - y1);
    const axis = { stroke: "#5b6475", "stroke-width": 1 };
    const label = { fill: "#1d2330", "font-size": 12, "font-family": "DejaVu Sans, sans-serif" };
    for (const t of ticks(lo, hi, 5)) {
      const y = sy(t);
      root.append(svg("line", { x1: x0, x2: x1, y1: y, y2: y, stroke: "#e5e8ee", "stroke-width": 1 }));
      root.append(svg("text", { ...label, x: x0 - 6, y: y + 4, "text-anchor": "end" }, t.toPrecision(3)));
    }
    for (const t of ticks(1, maxStep, Math.min(8, maxStep)).filter((v) => Number.isInteger(v))) {
      const x = sx(t);
      root.append(svg("line", { ...axis, x1: x, x2: x, y1: y0, y2: y0 + 4 }));
      root.append(svg("text", { ...label, x, y: y0 + 17, "text-anchor": "middle" }, String(t)));
    }
    root.append(svg("line", { ...axis, x1: x0, x2: x1, y1: y0, y2: y0 }));
    root.append(svg("line", { ...axis, x1: x0, x2: x0, y1: y0, y2: y1 }));
    root.append(svg("text", { ...label, x: (x0 + x1) / 2, y: H - 6, "text-anchor": "middle" }, "step"));
    root.append(
      svg(
        "text",
        {
          ...label,
          x: 14,
          y: (y0 + y1) / 2,
          "text-anchor": "middle",
          transform: `rotate(-90 14 ${(y0 + y1) / 2})`,
        },
        "training loss",
      ),
    );
    if (finite.length > 0) {
      const d = finite.map(([s, l], i) => `${i === 0 ? "M" : "L"}${sx(s).toFixed(1)},${sy(l).toFixed(1)}`);
      root.append(
        svg("path", {
          d: d.join(" "),
          fill: "none",
          stroke: "#2563eb",
          "stroke-width": 2,
          "stroke-linejoin": "round",
        }),
      );
      for (const [s, l] of finite)
        root.append(svg("circle", { cx: sx(s).toFixed(1), cy: sy(l).toFixed(1), r: 2.5, fill: "#2563eb" }));
    } else {
      root.append(
        svg(
          "text",
          { ...label, x: (x0 + x1) / 2, y: (y0 + y1) / 2, "text-anchor": "middle", fill: "#5b6475" },
          "no steps yet",
        ),
      );
    }
    this.container.replaceChildren(root);
  }
}
