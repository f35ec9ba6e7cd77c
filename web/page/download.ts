/**
 * Saving the adapter: one object URL and <a download> per file. The page clicks each link itself;
 * a browser may block the second automatic download of one click (Chromium asks to allow "multiple
 * downloads"), so the links also stay on the page, one per file, for the user to click.
 */
import type { FileMap } from "../../src/web/protocol.js";
import { el } from "./dom.js";

let urls: string[] = [];

export function offerDownloads(files: FileMap, container: HTMLElement, names: readonly string[]): void {
  for (const u of urls) URL.revokeObjectURL(u);
  urls = [];
  const links: HTMLAnchorElement[] = [];
  for (const name of names) {
    const bytes = files[name];
    if (bytes === undefined) throw new Error(`the adapter has no ${name}`);
    const type = name.endsWith(".json") ? "application/json" : "application/octet-stream";
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
    urls.push(url);
    const a = el("a", name);
    a.href = url;
    a.download = name;
    a.id = `download-${name.replace(/[^a-z0-9]+/gi, "-")}`;
    links.push(a);
  }
  container.replaceChildren(el("span", "Saved: "), ...links);
  for (const a of links) a.click();
}
