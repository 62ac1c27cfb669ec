import { closeSync } from 'node:fs';

/** Closes a descriptor the caller is done with; a failed close still leaves it closed, so there is nothing to do about one. */
export function closeQuietly(fd: number | undefined): undefined {
  if (fd === undefined) return undefined;
  try {
    closeSync(fd);
  } catch {
    // closed all the same
  }
  return undefined;
}
