/**
 * Token ids → text, incrementally, for streaming, with OpenAI's `stop` strings.
 *
 * Each new id re-decodes the whole generated list (so multi-byte characters and merges that depend on
 * neighbours come out right) and the new suffix is emitted, except:
 * - text ending in U+FFFD (an incomplete UTF-8 sequence so far) is held back until it completes;
 * - the longest tail that could still begin a stop string is held back, so text that a stop string
 *   later cuts is never emitted.
 * When a stop string appears, the text ends just before it and the stream is finished ("stop"); the
 * caller then cancels the engine request and ignores later tokens.
 *
 * Every token gets the span of text it added ([start, end) in the decoded text); a token is emitted
 * with the chunk that emits the end of its span, and at the finish with whatever is left, unless a
 * stop string cut it off entirely. Stream and non-stream answers are built from the same pieces.
 */

export interface Piece<T> {
  /** Text to append to what was emitted before. */
  text: string;
  /** The tokens whose text this piece completes (with their offsets in the whole text). */
  tokens: { token: T; offset: number }[];
}

const REPLACEMENT = "\uFFFD";

export class TextStream<T> {
  private readonly ids: number[] = [];
  private readonly pendingTokens: { token: T; start: number; end: number }[] = [];
  /** The decoded text of all ids so far, complete characters only. */
  private text = "";
  private emitted = 0;
  private stoppedAt: number | null = null;
  private readonly maxStop: number;

  constructor(
    private readonly decode: (ids: number[]) => string,
    private readonly stops: readonly string[] = [],
  ) {
    this.maxStop = Math.max(0, ...stops.map((s) => s.length));
  }

  /** True once a stop string has ended the text. */
  get stopped(): boolean {
    return this.stoppedAt !== null;
  }

  /** Adds one generated token (`id`, with its payload `token`); returns what may be emitted now. */
  push(id: number, token: T): Piece<T> {
    if (this.stoppedAt !== null) return { text: "", tokens: [] };
    this.ids.push(id);
    let full = this.decode(this.ids);
    // Hold back an incomplete UTF-8 sequence (decoded as trailing U+FFFD) until it completes.
    let end = full.length;
    while (end > 0 && full[end - 1] === REPLACEMENT) end--;
    full = full.slice(0, end);
    // The decoded text only grows at the end; if a re-decode changed earlier text, keep what was
    // already emitted and continue from its length.
    const start = Math.min(this.text.length, full.length);
    this.text = full.length >= this.text.length ? full : this.text;
    this.pendingTokens.push({ token, start, end: Math.max(start, this.text.length) });

    if (this.stops.length > 0) {
      const from = Math.max(0, this.emitted - this.maxStop);
      let cut = -1;
      for (const s of this.stops) {
        const at = this.text.indexOf(s, from);
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        this.stoppedAt = cut;
        return this.take(cut, true);
      }
      return this.take(this.text.length - this.heldForStop(), false);
    }
    return this.take(this.text.length, false);
  }

  /** The rest at the end of the generation (everything when no stop string cut it). */
  finish(): Piece<T> {
    const limit = this.stoppedAt ?? this.text.length;
    return this.take(limit, true);
  }

  /** The whole text returned to the client. */
  get finalText(): string {
    return this.text.slice(0, this.stoppedAt ?? this.text.length);
  }

  /** Length of the longest tail of the text that is a proper prefix of some stop string. */
  private heldForStop(): number {
    const max = Math.min(this.maxStop - 1, this.text.length - this.emitted);
    for (let n = max; n > 0; n--) {
      const tail = this.text.slice(this.text.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }

  private take(upTo: number, final: boolean): Piece<T> {
    upTo = Math.max(upTo, this.emitted);
    const text = this.text.slice(this.emitted, upTo);
    this.emitted = upTo;
    const tokens: Piece<T>["tokens"] = [];
    while (this.pendingTokens.length > 0) {
      const t = this.pendingTokens[0]!;
      const complete = t.end <= upTo;
      // At the end: a token whose text begins before the cut is kept; one wholly cut off is not.
      const keepAtEnd = final && (this.stoppedAt === null || t.start < upTo);
      if (!complete && !keepAtEnd) break;
      tokens.push({ token: t.token, offset: t.start });
      this.pendingTokens.shift();
    }
    if (final) this.pendingTokens.length = 0;
    return { text, tokens };
  }
}
