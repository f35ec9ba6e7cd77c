/**
 * The page `lora-ts analyze subspace --out FILE.html` writes: self-contained (inline SVG, no script,
 * no network), one heat map of φ(i, j) per module, in the colours and fonts of the training report
 * (src/train/chart.ts, chart-svg.ts, report-html.ts).
 */
import type { SubspaceComparison, SubspaceResult } from "../lora/subspace.js";
import { CHART_COLORS, niceTicks, type Rgb } from "../train/chart.js";
import { BROWSER_FONTS } from "../train/chart-svg.js";
import { escapeHtml as esc, htmlPage } from "../train/html-page.js";
import { writeFileAtomic } from "../util/atomic.js";

function hex(c: Rgb): string {
  return `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

/** φ ∈ [0, 1] → a colour from the background (0) to the chart's train colour (1). */
export function heatColor(phi: number): string {
  const t = Math.min(1, Math.max(0, Number.isFinite(phi) ? phi : 0));
  const lo = CHART_COLORS.background;
  const hi = CHART_COLORS.train;
  return hex(lo.map((v, i) => Math.round(v + (hi[i]! - v) * t)) as unknown as Rgb);
}

/** Integer ticks 1..n, at most about 6 of them, always including 1 and n. */
function rankTicks(n: number): number[] {
  const ticks = niceTicks(1, n, 6, true).ticks.filter((t) => t > 1 && t < n);
  return [1, ...ticks, ...(n > 1 ? [n] : [])];
}

/** One module's φ grid as an SVG heat map: i (the first adapter's directions) down, j across. */
export function heatMapSvg(m: SubspaceResult, index: number): string {
  const k1 = m.phi.length;
  const k2 = m.phi[0]?.length ?? 0;
  const cell = Math.max(4, Math.min(36, Math.floor(320 / Math.max(k1, k2, 1))));
  const left = 56;
  const top = 28;
  const plotW = cell * k2;
  const plotH = cell * k1;
  const barX = left + plotW + 24;
  const width = barX + 60;
  const height = top + plotH + 44;
  const c = CHART_COLORS;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(`subspace similarity of ${m.path}`)}" font-family="${BROWSER_FONTS}" font-size="12">`,
  );
  o.push(`<rect width="${width}" height="${height}" fill="${hex(c.background)}"/>`);
  o.push(`<g class="cells" shape-rendering="crispEdges">`);
  for (let i = 0; i < k1; i++) {
    for (let j = 0; j < k2; j++) {
      const v = m.phi[i]![j]!;
      o.push(
        `<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${heatColor(v)}"><title>φ(${i + 1}, ${j + 1}) = ${v.toFixed(4)}</title></rect>`,
      );
    }
  }
  o.push("</g>");
  o.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="${hex(c.axis)}" stroke-width="1"/>`,
  );
  o.push(`<g class="tick-labels" fill="${hex(c.text)}">`);
  for (const t of rankTicks(k1)) {
    o.push(
      `<text x="${left - 6}" y="${(top + (t - 0.5) * cell + 4).toFixed(1)}" text-anchor="end">${t}</text>`,
    );
  }
  for (const t of rankTicks(k2)) {
    o.push(
      `<text x="${(left + (t - 0.5) * cell).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${t}</text>`,
    );
  }
  o.push(
    `<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle" font-size="13">j (second adapter, r=${m.r2})</text>`,
  );
  o.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="13">i (first adapter, r=${m.r1})</text>`,
  );
  o.push("</g>");
  // colour bar 0..1
  const gid = `phi-scale-${index}`;
  o.push(
    `<defs><linearGradient id="${gid}" x1="0" y1="1" x2="0" y2="0"><stop offset="0" stop-color="${heatColor(0)}"/><stop offset="1" stop-color="${heatColor(1)}"/></linearGradient></defs>`,
  );
  o.push(
    `<rect class="colorbar" x="${barX}" y="${top}" width="12" height="${plotH}" fill="url(#${gid})" stroke="${hex(c.axis)}" stroke-width="1"/>`,
  );
  o.push(`<g fill="${hex(c.text)}">`);
  for (const v of [0, 0.5, 1]) {
    o.push(`<text x="${barX + 18}" y="${(top + (1 - v) * plotH + 4).toFixed(1)}">${v}</text>`);
  }
  o.push(`<text x="${barX}" y="${top - 10}">φ</text>`);
  o.push("</g>");
  o.push("</svg>");
  return o.join("\n");
}

/** The whole page: the summary table, one heat map per module, and what was not compared. */
export function subspaceHtml(cmp: SubspaceComparison, labels: { a: string; b: string }): string {
  const rows = cmp.modules
    .map(
      (m) =>
        `<tr><th scope="row">${esc(m.path)}</th><td>${m.d}</td><td>${m.r1}×${m.r2}</td><td>${m.phi[0]![0]!.toFixed(3)}</td><td>${m.mean.toFixed(3)}</td><td>${m.chanceMean.toFixed(3)}</td></tr>`,
    )
    .join("\n");
  const figures = cmp.modules
    .map(
      (m, i) => `<figure>
${heatMapSvg(m, i)}
<figcaption><b>${esc(m.path)}</b> (${m.kind}, input dimension d = ${m.d}): mean φ ${m.mean.toFixed(3)}, chance ${m.chanceMean.toFixed(3)}${m.note ? ` — ${esc(m.note)}` : ""}</figcaption>
</figure>`,
    )
    .join("\n");
  const notCompared: string[] = [
    ...cmp.onlyA.map((p) => `<li>${esc(p)}: adapted only in the first adapter</li>`),
    ...cmp.onlyB.map((p) => `<li>${esc(p)}: adapted only in the second adapter</li>`),
    ...cmp.skipped.map((s) => `<li>${esc(s.path)}: ${esc(s.reason)}</li>`),
  ];
  return htmlPage({
    title: "lora-ts subspace similarity",
    maxWidth: 860,
    body: `<h1>Subspace similarity (LoRA paper §7.2)</h1>
<p class="sub">first: ${esc(labels.a)}<br>second: ${esc(labels.b)}</p>
<p>φ(i, j) = ‖U<sub>i</sub><sup>T</sup>U<sub>j</sub>‖²<sub>F</sub> / min(i, j), where U<sub>i</sub> holds the top-i right
singular vectors of the first adapter's A and U<sub>j</sub> the top-j of the second's: the share of the smaller
subspace that lies in the larger. 1 means the same directions; two random subspaces of the d-dimensional input
space give max(i, j)/d on average ("chance").</p>
<table>
<tr><th>module</th><th>d</th><th>r₁×r₂</th><th>φ(1, 1)</th><th>mean φ</th><th>chance</th></tr>
${rows}
</table>
${figures}
${notCompared.length > 0 ? `<h2>Not compared</h2>\n<ul>\n${notCompared.join("\n")}\n</ul>` : ""}`,
  });
}

export function writeSubspaceHtml(
  path: string,
  cmp: SubspaceComparison,
  labels: { a: string; b: string },
): void {
  writeFileAtomic(path, subspaceHtml(cmp, labels));
}
