// The agent's small local state: which ranks it started (with pids and log offsets), what
// it has reported, and the highest scheduler epoch seen. Written atomically (temp file +
// rename) so a crash mid-write leaves the previous version, never a torn one.
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
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

export class StateFile {
  readonly path: string;
  state: AgentState;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'agent-state.json');
    this.state = this.read();
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

  save(): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state));
    renameSync(tmp, this.path);
  }
}
