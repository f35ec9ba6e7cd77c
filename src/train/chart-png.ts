/** loss.png: the SVG loss chart rendered by resvg (@resvg/resvg-js). */
import { Resvg } from "@resvg/resvg-js";
import { writeFileAtomic } from "../util/atomic.js";
import { svgChart } from "./chart-svg.js";
import type { Metrics } from "./events.js";

export interface PngChartOptions {
  width?: number;
  height?: number;
  /**
   * Draw the text with the system's fonts (default true). Where there are none, resvg leaves the text
   * out and the chart is drawn without its labels.
   */
  systemFonts?: boolean;
}

/**
 * Fonts named for resvg. It resolves system-ui to the first font it loaded, often a serif, and
 * sans-serif to Arial, so the common sans fonts of Linux, macOS and Windows are named first.
 */
const PNG_FONTS = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";

/** The loss chart as a PNG file's bytes (the same drawing as svgChart, at its pixel size). */
export function pngChart(metrics: readonly Metrics[], opts: PngChartOptions = {}): Buffer {
  const svg = svgChart(metrics, { width: opts.width, height: opts.height, fontFamily: PNG_FONTS });
  const resvg = new Resvg(svg, { font: { loadSystemFonts: opts.systemFonts ?? true } });
  return resvg.render().asPng();
}

export function writePngChart(path: string, metrics: readonly Metrics[], opts: PngChartOptions = {}): void {
  writeFileAtomic(path, pngChart(metrics, opts));
}
