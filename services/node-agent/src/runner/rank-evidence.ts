// Reads, within fixed bounds, what a rank left behind about its failure (its torchelastic
// error file and the end of its stderr) and hands it to the pure parser in rank-error.ts.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_FILE_READ_BYTES, STDERR_TAIL_BYTES, rankError, type RankError } from './rank-error.js';

/** Coarse file-system timestamps: an error file this much older than the rank's start still counts. */
const MTIME_SLACK_MS = 2_000;

interface Slice { text: string; partial: boolean }

/** Up to `bytes` from the start (or the end) of a regular file; undefined when it cannot be read. */
function readSlice(path: string, bytes: number, from: 'start' | 'end', notBeforeMs = 0): Slice | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the agent.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.mtimeMs < notBeforeMs) return undefined;
    const len = Math.min(bytes, st.size);
    const pos = from === 'end' ? st.size - len : 0;
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, pos + got);
      if (n <= 0) break;
      got += n;
    }
    return { text: buf.subarray(0, got).toString('utf8'), partial: pos > 0 };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * The error a rank that ended reported: `errorFile` is its TORCHELASTIC_ERROR_FILE, read only
 * if written during this run (a path the job chose may hold an earlier attempt's file).
 */
export function readRankError(opts: { dir: string; errorFile?: string; startedAt: Date; exitedAt: Date }): RankError | undefined {
  const file = opts.errorFile ? readSlice(opts.errorFile, ERROR_FILE_READ_BYTES, 'start', opts.startedAt.getTime() - MTIME_SLACK_MS) : undefined;
  const stderr = readSlice(join(opts.dir, 'stderr.log'), STDERR_TAIL_BYTES, 'end');
  return rankError({ errorFile: file?.text, stderrTail: stderr?.text, stderrTailPartial: stderr?.partial, exitedAt: opts.exitedAt });
}
