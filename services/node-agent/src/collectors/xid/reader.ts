// Follows the kernel log as an async iterator of lines: /dev/kmsg when readable, else
// `journalctl -k -f -o short-iso`. From /dev/kmsg the agent reads the whole ring buffer and
// skips what it already handled (`afterSeq`, from the cursor it persists: kmsg-cursor.ts),
// so an XID logged while the agent was down is still reported once. Without a cursor
// (`afterSeq` undefined and not `fromStart`) the backlog is skipped, as the journal always
// does: its lines carry no kmsg sequence number to resume from.
import { spawn } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import { createInterface } from 'node:readline';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseKernelLogLine } from './kernel-log.js';

/** Records the reader knows it never saw: overwritten in the ring buffer before it read them. */
export interface KmsgMissed {
  /** Last sequence number handled before the gap (the cursor), when known. */
  afterSeq?: number;
  /** First sequence number read after the gap, when known. */
  nextSeq?: number;
  /** How it was noticed: read(2) failed with EPIPE, or the sequence numbers jump. */
  how: 'EPIPE' | 'seq-gap';
}

export interface KernelLogFollowOptions {
  signal?: AbortSignal;
  kmsgPath?: string;
  /** How often to look for new kmsg records. */
  pollMs?: number;
  /** Yield the existing backlog too (tests, or an operator asking for history). */
  fromStart?: boolean;
  /**
   * Read the backlog from the oldest record in the ring buffer and yield only records with a
   * larger sequence number (-1: all of them). Implies fromStart for kmsg; the journal ignores it.
   */
  afterSeq?: number;
  /** Called when records were lost (the ring buffer wrapped); reading goes on. */
  onMissed?: (missed: KmsgMissed) => void;
  /** Command used when kmsg is not readable. */
  journalctl?: string;
  /** Test seam: opens the kmsg device (default fs.promises.open, non-blocking). */
  open?: (path: string) => Promise<KmsgHandle>;
}

/** The part of a FileHandle the reader uses. */
export interface KmsgHandle {
  read(buffer: Buffer, offset: number, length: number, position: null): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

const KMSG_RECORD_MAX = 8192; // a smaller buffer makes read(2) on /dev/kmsg fail with EINVAL

/**
 * /dev/kmsg opened non-blocking: each read(2) returns exactly one record, starting at the
 * oldest one still in the ring buffer, EAGAIN when there is none, EPIPE when records we had
 * not read yet were overwritten (logged through onMissed, then we carry on). A regular file
 * standing in for it (the simulator's ring, tests) returns several records per read and EOF
 * when caught up, so lines are reassembled across reads. Polling keeps the libuv thread pool
 * free; a blocking read would pin one thread forever.
 */
export async function* followKmsg(options: KernelLogFollowOptions = {}): AsyncGenerator<string> {
  const path = options.kmsgPath ?? '/dev/kmsg';
  const handle = options.open ? await options.open(path) : await fsp.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const buf = Buffer.allocUnsafe(KMSG_RECORD_MAX);
  const pollMs = options.pollMs ?? 250;
  const afterSeq = options.afterSeq;
  let skipping = afterSeq === undefined && !options.fromStart;
  // Sequence number of the last record read or already handled, to notice gaps: with a
  // cursor the next record is the one after it, on a fresh boot (-1) record 0.
  let lastSeq = afterSeq;
  /** Whether the record being read is one to skip (its continuation lines go with it). */
  let skipRecord = false;
  let partial = '';
  // A regular file's read may end inside a multi-byte character.
  const decoder = new StringDecoder('utf8');
  try {
    while (!options.signal?.aborted) {
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buf, 0, buf.length, null));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') {
          options.onMissed?.({ ...(lastSeq !== undefined ? { afterSeq: lastSeq } : {}), how: 'EPIPE' });
          // The sequence gap that follows is the same loss: do not report it twice.
          lastSeq = undefined;
          continue;
        }
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw err;
        n = -1;
      }
      if (n <= 0) {
        // EAGAIN (or EOF on a regular file standing in for kmsg): caught up.
        skipping = false;
        try {
          await sleep(pollMs, undefined, options.signal ? { signal: options.signal } : undefined);
        } catch {
          return;
        }
        continue;
      }
      if (skipping) continue;
      // A record is "prio,seq,usec,flags;message\n" plus optional " KEY=value" lines.
      const text = partial + decoder.write(buf.subarray(0, n));
      const end = text.lastIndexOf('\n');
      partial = end < 0 ? text : text.slice(end + 1);
      if (end < 0) continue;
      for (const line of text.slice(0, end).split('\n')) {
        if (line.length === 0) continue;
        const seq = line.startsWith(' ') ? undefined : parseKernelLogLine(line).seq;
        if (seq !== undefined) {
          if (lastSeq !== undefined && seq > lastSeq + 1) options.onMissed?.({ afterSeq: lastSeq, nextSeq: seq, how: 'seq-gap' });
          skipRecord = afterSeq !== undefined && seq <= afterSeq;
          if (lastSeq === undefined || seq > lastSeq) lastSeq = seq;
        }
        if (!skipRecord) yield line;
      }
    }
  } finally {
    await handle.close();
  }
}

/** `journalctl -k -f -o short-iso -n 0`, line by line. */
export async function* followJournal(options: KernelLogFollowOptions = {}): AsyncGenerator<string> {
  const child = spawn(options.journalctl ?? 'journalctl', ['-k', '-f', '-o', 'short-iso', '-n', options.fromStart ? 'all' : '0'], {
    stdio: ['ignore', 'pipe', 'ignore'],
    ...(options.signal ? { signal: options.signal } : {}),
  });
  child.on('error', () => { /* surfaced as the stream ending */ });
  const rl = createInterface({ input: child.stdout });
  try {
    for await (const line of rl) yield line;
  } catch (err) {
    if (!options.signal?.aborted) throw err;
  } finally {
    rl.close();
    child.kill('SIGTERM');
  }
}

/** kmsg when we may read it, the journal otherwise. */
export async function* followKernelLog(options: KernelLogFollowOptions = {}): AsyncGenerator<string> {
  let kmsgReadable = true;
  try {
    await fsp.access(options.kmsgPath ?? '/dev/kmsg', constants.R_OK);
  } catch {
    kmsgReadable = false;
  }
  if (kmsgReadable) {
    try {
      yield* followKmsg(options);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Containers often list /dev/kmsg but deny reading it (EPERM with dmesg_restrict).
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOENT' && code !== 'EINVAL') throw err;
    }
  }
  yield* followJournal(options);
}
