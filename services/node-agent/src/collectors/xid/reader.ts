// Follows the kernel log as an async iterator of lines: /dev/kmsg when readable, else
// `journalctl -k -f -o short-iso`. Only new records are yielded (the backlog is skipped at
// start), because the backlog was reported by whoever ran before us or predates the agent.
import { spawn } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

export interface KernelLogFollowOptions {
  signal?: AbortSignal;
  kmsgPath?: string;
  /** How often to look for new kmsg records. */
  pollMs?: number;
  /** Yield the existing backlog too (tests, or an operator asking for history). */
  fromStart?: boolean;
  /** Command used when kmsg is not readable. */
  journalctl?: string;
}

const KMSG_RECORD_MAX = 8192; // a smaller buffer makes read(2) on /dev/kmsg fail with EINVAL

/**
 * /dev/kmsg opened non-blocking: each read(2) returns exactly one record, EAGAIN when there
 * is none, EPIPE when records we had not read yet were overwritten (we just carry on).
 * Polling keeps the libuv thread pool free; a blocking read would pin one thread forever.
 */
export async function* followKmsg(options: KernelLogFollowOptions = {}): AsyncGenerator<string> {
  const handle = await fsp.open(options.kmsgPath ?? '/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  const buf = Buffer.allocUnsafe(KMSG_RECORD_MAX);
  const pollMs = options.pollMs ?? 250;
  let skipping = !options.fromStart;
  try {
    while (!options.signal?.aborted) {
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buf, 0, buf.length, null));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue;
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
      const text = buf.toString('utf8', 0, n);
      for (const line of text.split('\n')) if (line.length > 0) yield line;
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
