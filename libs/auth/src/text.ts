// Quoting input back to a caller: never more than a short prefix of a value, so a 200 KB name
// cannot make an error message (and the reply) huge.

export const PREVIEW_CHARS = 32;
export const MAX_DETAILS_CHARS = 1024;

/** `"abc…"` (N bytes): a JSON-quoted prefix of at most `max` characters and the full size. */
export function preview(value: string, max = PREVIEW_CHARS): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max)).slice(0, -1)}…" (${Buffer.byteLength(value)} bytes)`;
}

/**
 * A status message fit to send: every JSON-quoted string in it longer than the preview is cut
 * to a prefix, and the whole message to MAX_DETAILS_CHARS. A backstop for messages built by
 * code that quotes whole values.
 */
export function boundedDetails(details: string): string {
  let out = details.replace(/"(?:[^"\\]|\\.){80,}"/g, (quoted) => {
    let inner: string;
    try { inner = JSON.parse(quoted) as string; } catch { inner = quoted.slice(1, -1); }
    return preview(inner);
  });
  if (out.length > MAX_DETAILS_CHARS) out = `${out.slice(0, MAX_DETAILS_CHARS)}… (message shortened)`;
  return out;
}
