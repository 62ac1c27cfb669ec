// Follows a rank's log file from a saved offset and yields complete lines. Reading files
// (not pipes) lets a restarted agent resume exactly where the previous one stopped.
import { openSync, readSync, fstatSync, statSync, truncateSync } from 'node:fs';
import { closeQuietly } from './close-quietly.js';

const CHUNK = 64 * 1024;
/** Longest line kept whole; longer ones are split so one runaway line cannot exhaust memory. */
export const MAX_LINE_BYTES = 16 * 1024;

export class LogTail {
  private partial = Buffer.alloc(0);
  /**
   * Kept open from the first read that finds the file until `close`: the reporter reads every
   * running rank's logs several times a second, mostly to find nothing new.
   */
  private fd: number | undefined;

  constructor(readonly path: string, public offset: number) {}

  /** Reads what was appended since the last call; `final` flushes a trailing partial line. */
  readLines(final = false): string[] {
    const lines: string[] = [];
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.path, 'r');
      } catch {
        return lines;
      }
    }
    const fd = this.fd;
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch {
      this.close();
      return lines;
    }
    if (size < this.offset) this.offset = 0; // truncated by someone: start over
    const buf = this.offset < size ? Buffer.allocUnsafe(Math.min(CHUNK, size - this.offset)) : undefined;
    while (buf && this.offset < size) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
      if (n <= 0) break;
      this.offset += n;
      let data = Buffer.concat([this.partial, buf.subarray(0, n)]);
      for (;;) {
        const nl = data.indexOf(0x0a);
        const end = nl >= 0 && nl <= MAX_LINE_BYTES ? nl : data.length > MAX_LINE_BYTES ? MAX_LINE_BYTES : -1;
        if (end < 0) break;
        lines.push(data.subarray(0, end).toString('utf8'));
        data = data.subarray(end === nl ? end + 1 : end);
      }
      this.partial = Buffer.from(data);
    }
    if (final && this.partial.length > 0) {
      lines.push(this.partial.toString('utf8'));
      this.partial = Buffer.alloc(0);
    }
    return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  }

  /** Lets go of the file (a later read opens it again). */
  close(): void {
    this.fd = closeQuietly(this.fd);
  }

  /** Bytes consumed into complete lines (what is safe to persist as the resume point). */
  get committedOffset(): number {
    return this.offset - this.partial.length;
  }
}

/**
 * Bounds a rank's log file on the host's disk: once `maxBytes` have been shipped and nothing
 * unread is left, the file is emptied (the rank writes with O_APPEND, so it carries on at the
 * new end) and the tail starts over. Shipped lines are already in the control plane. Between
 * the size check and the truncation a line written in that instant could be lost, which is why
 * this waits for a quiet moment and applies only to very large logs. Returns whether it truncated.
 */
export function truncateShipped(tail: LogTail, maxBytes: number): boolean {
  if (maxBytes <= 0 || tail.committedOffset < maxBytes || tail.committedOffset !== tail.offset) return false;
  let size: number;
  try {
    size = statSync(tail.path).size;
  } catch {
    return false;
  }
  if (size !== tail.offset) return false;
  truncateSync(tail.path, 0);
  tail.offset = 0;
  return true;
}
