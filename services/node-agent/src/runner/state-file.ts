// The agent's small local state: which ranks it started (with pids and log offsets), what
// it has reported, and the highest scheduler epoch seen. Written atomically (temp file +
// rename) so a crash mid-write leaves the previous version, never a torn one.
//
// Finished ranks are remembered for a retention window (rank-runner.ts), so the state would
// grow with every rank of the last hours and each write would re-encode all of them. A rank
// that has exited and whose exit was reported never changes again: it is appended once, as
// one line, to a journal beside the state file (agent-finished.jsonl) and leaves the state
// file, which so holds only the ranks still in flight. Reading takes both (the journal's copy
// wins: it is the later one). A crash between the append and the state write leaves a rank
// in both; a crash mid-append leaves a torn last line, which is skipped (the rank is still in
// the state file, written after the append) and dropped by rewriting the journal. Neither
// file is fsynced, as before: a crash of the agent loses nothing, a crash of the host can
// lose the last writes (and a reboot ends every rank anyway).
//
// Writes are coalesced: `saveSoon` marks the state changed and writes it once at the end of
// the event-loop turn, after every change of that turn (several ranks ending together write
// once). What may wait, what has been reported (lost, it is only sent again, and the message
// ids make that harmless), goes with the next write or within LAZY_WRITE_MS (`saveLater`).
// Whatever must be on disk before something leaves the agent (a command's reply, a report
// that depends on it) calls `save` or `settle` first; `flush` writes whatever is pending.
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

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

/** Exited and its exit reported: nothing about the rank changes any more (journal material). */
const settled = (rec: RankRecord): boolean => rec.phase === 'exited' && rec.exitReported;

export class StateFile {
  readonly path: string;
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

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'agent-state.json');
    this.journalPath = join(dir, 'agent-finished.jsonl');
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

  private read(): AgentState {
    if (!existsSync(this.path)) return { version: 1, highestEpoch: 0, ranks: {} };
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as AgentState;
      if (parsed.version !== 1 || typeof parsed.ranks !== 'object') throw new Error('unknown state version');
      return parsed;
    } catch (err) {
      // Keep the unreadable file for an operator and start afresh rather than refuse to run.
      renameSync(this.path, `${this.path}.corrupt-${Date.now()}`);
      process.emitWarning(`agent state ${this.path} was unreadable (${(err as Error).message}); moved aside`);
      return { version: 1, highestEpoch: 0, ranks: {} };
    }
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
      // Rewritten whole (temp file + rename): the ranks still remembered, the new ones included.
      const all = [...this.journaled].flatMap((k) => (this.state.ranks[k] ? [JSON.stringify(this.state.ranks[k])] : [])).concat(lines);
      const tmp = `${this.journalPath}.tmp`;
      writeFileSync(tmp, all.length > 0 ? `${all.join('\n')}\n` : '');
      renameSync(tmp, this.journalPath);
      this.compactJournal = false;
    } else if (lines.length > 0) {
      appendFileSync(this.journalPath, `${lines.join('\n')}\n`);
    }
    // Only once they are in the journal do they leave the state file.
    for (const k of newlySettled) {
      this.journaled.add(k);
      this.hot.delete(k);
    }
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify({ ...this.state, ranks: hot }));
    renameSync(tmp, this.path);
    this.dirty = false;
    this.lazy = false;
    clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
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
