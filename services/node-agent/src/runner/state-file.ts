// The agent's small local state: which ranks it started (with pids and log offsets), what
// it has reported, and the highest scheduler epoch seen.
//
// Written in place, never through a temp file and a rename: on ext4 without a journal every
// file created while many were just deleted scans those deleted inodes first, so a temp file
// and a rename per write (a create and a delete) made every write, and every rank's files,
// slower the busier the agent was. Each write goes to two files the agent keeps open: first
// the shadow (agent-state.shadow: a header line with a sequence number, the payload's length,
// its CRC-32 and the CRC-32 of what agent-state.json held before, then the payload), then
// agent-state.json itself (the same JSON, padded with spaces to its former length, so it is
// never truncated before it is complete). The JSON begins and ends with the write's sequence
// number (writeSeq, writeEnd): a file torn mid-write, new at the start and old at the end,
// has two different ones even where the mix happens to parse. A crash mid-write tears at
// most one of the two files, and the reader takes agent-state.json when it holds what the
// shadow describes or something else that is whole (an older agent, which knows only
// agent-state.json and keeps fields it does not know, wrote it since), and the shadow when
// agent-state.json holds what preceded it or is torn. So agent-state.json stays the whole
// state in plain JSON, for an older agent after a downgrade and for the scripts that read
// it, except in the instant of a write.
//
// Finished ranks are remembered for a retention window (rank-runner.ts), so the state would
// grow with every rank of the last hours and each write would re-encode all of them. A rank
// that has exited and whose exit was reported never changes again: it is appended once, as
// one line, to a journal beside the state file (agent-finished.jsonl) and leaves the state
// file, which so holds only the ranks still in flight. Reading takes both (the journal's copy
// wins: it is the later one). A crash between the append and the state write leaves a rank
// in both; a crash mid-append leaves a torn last line, which is skipped (the rank is still in
// the state file, written after the append) and dropped by rewriting the journal. No file is
// fsynced, as before: a crash of the agent loses nothing, a crash of the host can lose the
// last writes (and a reboot ends every rank anyway).
//
// Writes are coalesced: `saveSoon` marks the state changed and writes it once at the end of
// the event-loop turn, after every change of that turn (several ranks ending together write
// once). What may wait, what has been reported (lost, it is only sent again, and the message
// ids make that harmless), goes with the next write or within LAZY_WRITE_MS (`saveLater`).
// Whatever must be on disk before something leaves the agent (a command's reply, a report
// that depends on it) calls `save` or `settle` first; `flush` writes whatever is pending.
import { constants, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { closeQuietly } from './close-quietly.js';

export type RankProcessPhase = 'running' | 'exited';

export interface LogCursor {
  offset: number;
  seq: number;
}

/**
 * One process of a node rank: the only one in per-node mode, one per GPU in per-GPU mode. Each
 * runs under its own wrapper in its own process group, with its own output and exit files.
 */
export interface ProcessRecord {
  /** LOCAL_RANK (0 for the one process of a per-node rank). */
  local: number;
  pid: number;
  /** Folder with stdout.log, stderr.log, the exit file and error.json. */
  dir: string;
  phase: RankProcessPhase;
  /** The wrapper's status once it exited (128+N: killed by signal N). */
  status?: number;
  /** When it exited: the exit file's time, else when the agent noticed. */
  finishedAt?: string;
  /** Why it could not start, or that its watchdog stopped it. */
  message?: string;
  /** Its TORCHELASTIC_ERROR_FILE (absolute), read when it fails. */
  errorFile?: string;
  logs: { stdout: LogCursor; stderr: LogCursor };
}

/** A node rank: what the scheduler assigned and hears about (one start, one exit). */
export interface RankRecord {
  jobId: string;
  attempt: number;
  rank: number;
  /** The first process's wrapper (the pid reported for the node rank). */
  pid: number;
  /** The node rank's folder (per node: also its one process's folder). */
  dir: string;
  phase: RankProcessPhase;
  startedAt: string;
  finishedAt?: string;
  exitCode?: number;
  signal?: string;
  /** Why the rank could not start, when it could not. */
  message?: string;
  stopRequested?: boolean;
  /** SIGTERM-to-SIGKILL grace the scheduler asked for when it assigned the rank. */
  stopGraceSeconds?: number;
  /** Per node: the process's TORCHELASTIC_ERROR_FILE (absolute), read when it exits. */
  errorFile?: string;
  /**
   * On a failed exit: the error the rank reported (error file, else the last exception line
   * of its stderr) and when it was raised (ISO). Kept here so a restarted agent reports the same.
   */
  error?: string;
  errorTime?: string;
  startReported: boolean;
  exitReported: boolean;
  /** LOCAL_RANK of the process that failed first, once one has (its exit is the rank's). */
  firstFailed?: number;
  /** Per-GPU launcher: log lines carry their process's LOCAL_RANK. */
  perGpu?: boolean;
  /** Its processes; absent in records written before node ranks could have several (see processesOf). */
  processes?: ProcessRecord[];
  /** Log cursors of a record without `processes` (the one process). */
  logs?: { stdout: LogCursor; stderr: LogCursor };
}

export const newCursors = (): ProcessRecord['logs'] => ({ stdout: { offset: 0, seq: 0 }, stderr: { offset: 0, seq: 0 } });

/**
 * The node rank's processes. A record an older agent wrote (ranks survive agent upgrades) has
 * one process described by the record itself: it is given its `processes` entry here, once.
 */
export function processesOf(rec: RankRecord): ProcessRecord[] {
  if (!rec.processes) {
    rec.processes = [{
      local: 0, pid: rec.pid, dir: rec.dir, phase: rec.phase, errorFile: rec.errorFile, logs: rec.logs ?? newCursors(),
      ...(rec.finishedAt !== undefined && { finishedAt: rec.finishedAt }),
    }];
    delete rec.logs;
  }
  return rec.processes;
}

export interface AgentState {
  version: 1;
  highestEpoch: number;
  /** Kernel boot id when the state was last written: after a reboot no rank can still be running. */
  bootId?: string;
  ranks: Record<string, RankRecord>;
}

export function rankKey(jobId: string, attempt: number, rank: number): string {
  return `${jobId}:${attempt}:${rank}`;
}

/** How long a change that may wait (saveLater) waits for another write to go with. */
export const LAZY_WRITE_MS = 1_000;

/** First line of the shadow: magic, sequence number, payload bytes, CRC-32 of the payload and of agent-state.json's former content. */
const SHADOW_HEADER = /^gantry-agent-state-shadow 1 (\d+) (\d+) (\d+) (\d+)\n/;
/** A file that has shrunk below a quarter of its size (and is larger than this) is cut back after the write. */
const SHRINK_ABOVE_BYTES = 64 * 1024;
const SPACE = 0x20;

/** Exited and its exit reported: nothing about the rank changes any more (journal material). */
const settled = (rec: RankRecord): boolean => rec.phase === 'exited' && rec.exitReported;

export class StateFile {
  readonly path: string;
  /** The copy written before `path` on every write (see the top of this file). */
  readonly shadowPath: string;
  /** Settled ranks, one JSON line each, appended once (see the top of this file). */
  readonly journalPath: string;
  state: AgentState;
  /** Keys of the ranks in `state.ranks` whose settled record is in the journal. */
  private readonly journaled = new Set<string>();
  /**
   * Keys of the other ranks, those a write looks at: kept by `state.ranks` itself (a proxy
   * that sees ranks added and deleted), so a write costs the ranks in flight, not all.
   */
  private readonly hot = new Set<string>();
  /** The journal holds ranks forgotten since, or a torn line: rewrite it at the next write. */
  private compactJournal = false;
  /** A change is pending that must be on disk before what depends on it is reported (saveSoon). */
  private dirty = false;
  /** A change is pending that may wait (saveLater). */
  private lazy = false;
  private scheduled = false;
  private lazyTimer: NodeJS.Timeout | undefined;
  /** Inside `deferring`: `save` waits for the end of the turn (the caller holds back what depends on it). */
  private deferDepth = 0;
  /** The files written in place, opened at the first write (again after a failed one). */
  private readonly stateOut: InPlaceFile;
  private readonly shadowOut: InPlaceFile;
  private journalFd: number | undefined;
  /** CRC-32 of what agent-state.json holds (its JSON, without the padding). */
  private stateCrc = 0;
  private seq = 0;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'agent-state.json');
    this.shadowPath = join(dir, 'agent-state.shadow');
    this.journalPath = join(dir, 'agent-finished.jsonl');
    this.stateOut = new InPlaceFile(this.path, true);
    this.shadowOut = new InPlaceFile(this.shadowPath, false);
    this.state = this.read();
    this.readJournal();
    for (const k of Object.keys(this.state.ranks)) if (!this.journaled.has(k)) this.hot.add(k);
    this.state.ranks = this.tracked(this.state.ranks);
  }

  private tracked(ranks: Record<string, RankRecord>): Record<string, RankRecord> {
    return new Proxy(ranks, {
      set: (target, key, value) => {
        if (typeof key === 'string') {
          // A rank set anew is in flight again: its journal line (if any) goes at the next write.
          if (this.journaled.delete(key)) this.compactJournal = true;
          this.hot.add(key);
        }
        return Reflect.set(target, key, value);
      },
      deleteProperty: (target, key) => {
        if (typeof key === 'string') {
          this.hot.delete(key);
          if (this.journaled.delete(key)) this.compactJournal = true;
        }
        return Reflect.deleteProperty(target, key);
      },
    });
  }

  /** The newest whole state of the two files (see the top of this file). */
  private read(): AgentState {
    const fresh = (): AgentState => ({ version: 1, highestEpoch: 0, ranks: {} });
    let raw: Buffer | undefined;
    try {
      raw = readFileSync(this.path);
    } catch {
      // missing: content '' (a crash between the shadow and the first write of the file)
    }
    const text = raw ? withoutPadding(raw) : Buffer.alloc(0);
    this.stateCrc = crc32(text);
    const shadow = readShadow(this.shadowPath);
    if (shadow) this.seq = shadow.seq;
    if (shadow && (this.stateCrc === shadow.crc || this.stateCrc === shadow.prevCrc)) {
      const s = parseState(shadow.payload);
      if (s) return s.state;
    }
    if (text.length === 0) return fresh();
    const parsed = parseState(text);
    if (parsed && !parsed.torn) return parsed.state;
    // Torn by a crash mid-write: the shadow, written whole before it, holds the state.
    const fromShadow = shadow && parseState(shadow.payload);
    if (fromShadow) return fromShadow.state;
    // Keep the unreadable file for an operator and start afresh rather than refuse to run.
    renameSync(this.path, `${this.path}.corrupt-${Date.now()}`);
    this.stateCrc = 0;
    process.emitWarning(`agent state ${this.path} was unreadable; moved aside`);
    return fresh();
  }

  private readJournal(): void {
    let text: string;
    try {
      text = readFileSync(this.journalPath, 'utf8');
    } catch {
      return;
    }
    // A line appended after a torn one would be glued to it: start the journal afresh first.
    if (text.length > 0 && !text.endsWith('\n')) this.compactJournal = true;
    for (const line of text.split('\n')) {
      if (!line) continue;
      let rec: RankRecord;
      try {
        rec = JSON.parse(line) as RankRecord;
      } catch {
        this.compactJournal = true;
        continue;
      }
      if (typeof rec?.jobId !== 'string' || typeof rec.attempt !== 'number' || typeof rec.rank !== 'number' || !settled(rec)) {
        this.compactJournal = true;
        continue;
      }
      const key = rankKey(rec.jobId, rec.attempt, rec.rank);
      this.state.ranks[key] = rec;
      this.journaled.add(key);
    }
  }

  /**
   * Runs `fn` with its writes (`save`) put off to the end of the turn, like `saveSoon`: for a
   * caller that holds back whatever depends on them until it has called `flush` (the agent's
   * command replies: several commands of one turn, one write).
   */
  deferring<T>(fn: () => T): T {
    this.deferDepth++;
    try {
      return fn();
    } finally {
      this.deferDepth--;
    }
  }

  /** Writes the state now (whatever else is pending goes with it); inside `deferring`, at the end of the turn. */
  save(): void {
    if (this.deferDepth > 0) {
      this.saveSoon();
      return;
    }
    this.write();
  }

  private write(): void {
    const hot: Record<string, RankRecord> = {};
    const lines: string[] = [];
    const newlySettled: string[] = [];
    for (const key of this.hot) {
      const rec = this.state.ranks[key];
      if (!rec) {
        this.hot.delete(key);
        continue;
      }
      if (settled(rec)) {
        lines.push(JSON.stringify(rec));
        newlySettled.push(key);
      } else {
        hot[key] = rec;
      }
    }
    if (this.compactJournal) {
      // Rewritten whole (temp file + rename, rare): the ranks still remembered, the new ones included.
      const all = [...this.journaled].flatMap((k) => (this.state.ranks[k] ? [JSON.stringify(this.state.ranks[k])] : [])).concat(lines);
      const tmp = `${this.journalPath}.tmp`;
      writeFileSync(tmp, all.length > 0 ? `${all.join('\n')}\n` : '');
      this.closeJournal();
      renameSync(tmp, this.journalPath);
      this.compactJournal = false;
    } else if (lines.length > 0) {
      try {
        this.journalFd ??= openSync(this.journalPath, 'a');
        writeAll(this.journalFd, Buffer.from(`${lines.join('\n')}\n`), null);
      } catch (err) {
        // Part of it may be there: the next write rewrites the journal rather than append to a torn line.
        this.closeJournal();
        this.compactJournal = true;
        throw err;
      }
    }
    // Only once they are in the journal do they leave the state file.
    for (const k of newlySettled) {
      this.journaled.add(k);
      this.hot.delete(k);
    }
    const seq = this.seq + 1;
    const payload = Buffer.from(JSON.stringify({ writeSeq: seq, ...this.state, ranks: hot, writeEnd: seq }));
    const crc = crc32(payload);
    this.shadowOut.write(Buffer.concat([Buffer.from(`gantry-agent-state-shadow 1 ${seq} ${payload.length} ${crc} ${this.stateCrc}\n`), payload]));
    this.seq = seq;
    // Should this fail, the file holds its former content (named by the next shadow too) or is torn.
    this.stateOut.write(payload);
    this.stateCrc = crc;
    this.dirty = false;
    this.lazy = false;
    clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
  }

  private closeJournal(): void {
    this.journalFd = closeQuietly(this.journalFd);
  }

  /** Marks the state changed; it is written once, at the end of this turn of the event loop. */
  saveSoon(): void {
    this.dirty = true;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      // Thrown here it would end the agent (an uncaught exception in a bare callback) before the
      // command replies could be withheld; the change stays pending, and the reply path's own
      // settle() tries again and answers nothing if it fails too.
      try {
        this.settle();
      } catch (err) {
        this.onWriteError(err as Error);
      }
    });
  }

  /** A deferred write failed (the agent logs it); the change stays pending. */
  onWriteError: (err: Error) => void = () => undefined;

  /** The ranks not settled yet (running, or their exit not reported): those the agent still acts on. */
  unsettled(): RankRecord[] {
    const out: RankRecord[] = [];
    for (const key of this.hot) {
      const rec = this.state.ranks[key];
      if (rec && !settled(rec)) out.push(rec);
    }
    return out;
  }

  /** Marks a change that may wait (see the top of this file): written with the next write, at the latest after LAZY_WRITE_MS. */
  saveLater(): void {
    this.lazy = true;
    if (this.lazyTimer) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      this.flush();
    }, LAZY_WRITE_MS);
    // A process ending meanwhile only sends those reports again.
    this.lazyTimer.unref();
  }

  /** Writes the state now if any change is pending, one that may wait included. */
  flush(): void {
    if (this.dirty || this.lazy) this.write();
  }

  /** Writes the state now if a change is pending that must be on disk before it is reported. */
  settle(): void {
    if (this.dirty) this.write();
  }

  /** Drops a rank from memory and, at the next write, from the files. */
  forget(key: string): void {
    delete this.state.ranks[key];
    this.saveSoon();
  }
}

/**
 * The state in a file's JSON, or undefined when it is not an agent state; `torn` when its
 * first and last sequence numbers differ (see the top of this file).
 */
function parseState(text: Buffer): { state: AgentState; torn: boolean } | undefined {
  let parsed: AgentState & { writeSeq?: unknown; writeEnd?: unknown };
  try {
    parsed = JSON.parse(text.toString('utf8')) as typeof parsed;
  } catch {
    return undefined;
  }
  if (parsed?.version !== 1 || typeof parsed.ranks !== 'object' || parsed.ranks === null) return undefined;
  const torn = parsed.writeSeq !== parsed.writeEnd;
  delete parsed.writeSeq;
  delete parsed.writeEnd;
  return { state: parsed, torn };
}

/** The file without the spaces (or a newline an operator's editor added) after its JSON. */
function withoutPadding(raw: Buffer): Buffer {
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === SPACE || raw[end - 1] === 0x0a)) end--;
  return raw.subarray(0, end);
}

interface Shadow {
  seq: number;
  crc: number;
  prevCrc: number;
  payload: Buffer;
}

/** The shadow's payload if it is whole (its length and CRC-32 check out), else undefined. */
function readShadow(path: string): Shadow | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch {
    return undefined;
  }
  const nl = raw.indexOf(0x0a);
  const m = nl > 0 && nl < 200 ? SHADOW_HEADER.exec(raw.subarray(0, nl + 1).toString('latin1')) : null;
  if (!m) return undefined;
  const len = Number(m[2]);
  if (raw.length < nl + 1 + len) return undefined;
  const payload = raw.subarray(nl + 1, nl + 1 + len);
  if (crc32(payload) !== Number(m[3])) return undefined;
  return { seq: Number(m[1]), crc: Number(m[3]), prevCrc: Number(m[4]), payload };
}

function writeAll(fd: number, buf: Buffer, position: number | null): void {
  for (let off = 0; off < buf.length;) {
    off += writeSync(fd, buf, off, buf.length - off, position === null ? null : position + off);
  }
}

/**
 * A file rewritten in place from its start, kept open between writes. What it held beyond the
 * new content is overwritten with spaces when `pad` (agent-state.json: JSON with trailing
 * whitespace is still the same JSON) or left (the shadow says its own length); a file that
 * has shrunk a lot is cut back once the new content is whole.
 */
class InPlaceFile {
  private fd: number | undefined;
  private size = 0;

  constructor(readonly path: string, private readonly pad: boolean) {}

  write(content: Buffer): void {
    try {
      if (this.fd === undefined) {
        // No O_TRUNC: until the new content is written the old one stays whole.
        this.fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o666);
        this.size = fstatSync(this.fd).size;
      }
      const out = this.pad && content.length < this.size ? Buffer.concat([content, Buffer.alloc(this.size - content.length, SPACE)]) : content;
      writeAll(this.fd, out, 0);
      this.size = Math.max(this.size, out.length);
      if (this.size > SHRINK_ABOVE_BYTES && this.size > 4 * content.length) {
        ftruncateSync(this.fd, content.length);
        this.size = content.length;
      }
    } catch (err) {
      // Opened afresh at the next write (the file may have been moved or replaced meanwhile).
      this.close();
      throw err;
    }
  }

  close(): void {
    this.fd = closeQuietly(this.fd);
  }
}
