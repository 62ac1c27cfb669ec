// The agent's small local state: which ranks it started (with pids and log offsets), what
// it has reported, and the highest scheduler epoch seen. Written atomically (temp file +
// rename) so a crash mid-write leaves the previous version, never a torn one.
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export type RankProcessPhase = 'running' | 'exited';

export interface RankRecord {
  jobId: string;
  attempt: number;
  rank: number;
  pid: number;
  /** Folder with stdout.log, stderr.log and the exit file. */
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
  /** The rank's TORCHELASTIC_ERROR_FILE (absolute), read when it exits. */
  errorFile?: string;
  /**
   * On a failed exit: the error the rank reported (error file, else the last exception line
   * of its stderr) and when it was raised (ISO). Kept here so a restarted agent reports the same.
   */
  error?: string;
  errorTime?: string;
  startReported: boolean;
  exitReported: boolean;
  logs: { stdout: { offset: number; seq: number }; stderr: { offset: number; seq: number } };
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
