/**
 * The frame of lora-ts's self-contained HTML pages (the training report, the sweep report, the
 * subspace heat maps): one look, no script, no network.
 */

/** Text for HTML content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The style every page shares; `css` adds to or overrides it. */
const BASE_CSS = `body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 2rem auto; max-width: MAXpx; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
.sub { color: #666; margin-top: 0; }
figure { margin: 1.5rem 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.3rem 1.2rem 0.3rem 0; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
th { font-weight: 600; color: #444; }`;

/** A whole page: `title` (plain text), `body` (HTML), page width and extra CSS. */
export function htmlPage(opts: { title: string; body: string; maxWidth?: number; css?: string }): string {
  const css = BASE_CSS.replace("MAX", String(opts.maxWidth ?? 860)) + (opts.css ? `\n${opts.css}` : "");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(opts.title)}</title>
<style>
${css}
</style>
</head>
<body>
${opts.body}
</body>
</html>
`;
}
