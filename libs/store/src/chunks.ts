/** `items` in consecutive slices of at most `size` (script calls over many keys are made in slices, so none holds Redis long). */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Keys a read-only script call takes at most: about 0.2-0.5 ms of Redis per call. */
export const READ_CHUNK = 256;
