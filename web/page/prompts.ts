/**
 * The prompts textarea holds one prompt per paragraph: prompts are separated by one or more blank
 * lines (lines of only spaces count as blank), so a prompt may span lines, as the persona prompts do
 * ("Q: What do cows eat?\nA:"). Line breaks at a prompt's start and end are dropped; spaces are kept
 * (a trailing space changes the tokens).
 */
export function parsePrompts(text: string): string[] {
  return text
    .replace(/\r\n?/g, "\n")
    .split(/\n(?:[ \t]*\n)+/)
    .map((p) => p.replace(/^\n+|\n+$/g, ""))
    .filter((p) => p.trim() !== "");
}

export function formatPrompts(prompts: string[]): string {
  return prompts.join("\n\n");
}

/** The first `n` prompts of a prompt/completion JSONL file. */
export function promptsFromJsonl(text: string, n: number): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (out.length >= n) break;
    if (line.trim() === "") continue;
    const row = JSON.parse(line) as { prompt?: unknown };
    if (typeof row.prompt === "string") out.push(row.prompt);
  }
  return out;
}
