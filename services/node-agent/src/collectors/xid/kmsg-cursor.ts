// Where the agent is in the kernel log, kept across its restarts: the boot it read and the
// sequence number of the last /dev/kmsg record it handled. At start the reader takes the
// ring buffer from its oldest record and skips up to the cursor, so an XID logged while the
// agent was down is reported once, and nothing reported before is reported again. Sequence
// numbers restart at every boot: a cursor of another boot means "take all of this one".
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KmsgCursor {
  /** /proc/sys/kernel/random/boot_id of the boot the sequence number belongs to. */
  bootId: string;
  /** Last record handled (its XIDs, if any, are in the report buffer). */
  seq: number;
}

export const KMSG_CURSOR_FILE = 'kmsg-cursor.json';

export function kmsgCursorPath(stateDir: string): string {
  return join(stateDir, KMSG_CURSOR_FILE);
}

/** The persisted cursor, or undefined when there is none or it cannot be read (then: whole backlog). */
export function readKmsgCursor(path: string): KmsgCursor | undefined {
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<KmsgCursor>;
    if (typeof raw.bootId !== 'string' || raw.bootId === '' || !Number.isSafeInteger(raw.seq) || raw.seq! < -1) return undefined;
    return { bootId: raw.bootId, seq: raw.seq! };
  } catch {
    return undefined;
  }
}

/** Written to a temporary file and renamed over the old one: a crash leaves one or the other. */
export function writeKmsgCursor(path: string, cursor: KmsgCursor): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(cursor)}\n`);
  renameSync(tmp, path);
}

/**
 * The sequence number to resume after, for the reader's `afterSeq`: the cursor's when it is of
 * this boot, -1 (every record of this boot) when the machine rebooted or there is no cursor.
 */
export function resumeAfter(cursor: KmsgCursor | undefined, bootId: string): number {
  return cursor && cursor.bootId === bootId ? cursor.seq : -1;
}

/**
 * The cursor while the agent reads: advance() after each record is handled; a record that
 * produced a report is saved at once (a restart must not report it again), the others at most
 * every `flushMs` (re-reading them after a crash costs nothing but the reading).
 */
export class KmsgCursorTracker {
  readonly afterSeq: number;
  private seq: number;
  private savedSeq: number;
  private lastSave = 0;

  constructor(
    private readonly path: string,
    readonly bootId: string,
    private readonly options: { flushMs?: number; now?: () => number; onError?: (err: Error) => void } = {},
  ) {
    const previous = readKmsgCursor(path);
    this.afterSeq = resumeAfter(previous, bootId);
    this.seq = this.afterSeq;
    // A cursor of another boot is replaced by this boot's on the first save.
    this.savedSeq = previous?.bootId === bootId ? previous.seq : Number.NaN;
  }

  /** The last sequence number handled. */
  get position(): number {
    return this.seq;
  }

  advance(seq: number, reported: boolean): void {
    if (seq <= this.seq) return;
    this.seq = seq;
    const now = (this.options.now ?? Date.now)();
    if (reported || now - this.lastSave >= (this.options.flushMs ?? 1_000)) this.flush();
  }

  /** Saves the position if it moved since the last save. Never throws (a full disk must not stop XID reporting). */
  flush(): void {
    if (this.seq === this.savedSeq || this.seq < 0) return;
    try {
      writeKmsgCursor(this.path, { bootId: this.bootId, seq: this.seq });
      this.savedSeq = this.seq;
      this.lastSave = (this.options.now ?? Date.now)();
    } catch (err) {
      this.options.onError?.(err as Error);
    }
  }
}
