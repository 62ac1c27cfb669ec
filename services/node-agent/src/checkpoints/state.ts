// What the checkpoint hook must remember across agent restarts, in one small JSON file in the
// agent's state folder (written through a temp file and a rename, like the rank state):
// the directories it watches, what it last reported of each checkpoint (so a restart neither
// re-reports nor forgets a checkpoint that later vanished), the per-job tokens of the local
// endpoint, and the checkpoint directory of each job seen (deletions are confined to it).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WatchRecord {
  jobId: string;
  attempt: number;
  rank: number;
  dir: string;
  /** 'auto' or a layout name of libs/checkpoint-layouts. */
  format: string;
  /** CheckpointRetention as JSON (from GANTRY_CHECKPOINT_RETENTION), or ''. */
  retention: string;
}

export interface ReportedRecord {
  /** Digest of what was last published for this path (status, reasons, files). */
  digest: string;
  /** Publications so far; part of the message id, so a changed report is never taken for a duplicate. */
  seq: number;
  /** Step given by an explicit report, used for this path from then on. */
  step?: number;
  /**
   * The directory was seen on disk (a scan found it, or a commit checked it). Only such a path
   * is reported GONE when it is no longer there: one only announced by an explicit begin may
   * not have been created yet.
   */
  seen?: boolean;
}

export interface TokenRecord {
  jobId: string;
  attempt: number;
  dir: string;
  format: string;
  retention: string;
  /** JobSpec.checkpoint.storage_target ('' = the target whose mount prefix holds `dir`); absent in state files from before it. */
  storageTarget?: string;
  /** Node ranks on this host holding the token; it is revoked when the last one exits. */
  ranks: number[];
}

export interface CheckpointHookState {
  /** Port of the local endpoint, reused after a restart so re-adopted ranks still reach it. */
  port: number;
  watches: Record<string, WatchRecord>;
  /** job id -> checkpoint path -> what was reported. */
  reported: Record<string, Record<string, ReportedRecord>>;
  tokens: Record<string, TokenRecord>;
  /** job id -> its checkpoint directory and when it was last seen (ms). */
  dirs: Record<string, { dir: string; at: number }>;
}

const empty = (): CheckpointHookState => ({ port: 0, watches: {}, reported: {}, tokens: {}, dirs: {} });

export class CheckpointStateFile {
  readonly path: string;
  state: CheckpointHookState;
  /**
   * Checkpoint paths whose deletion by retention is under way (delete.ts): the watcher neither
   * reports them as it finds them (half removed) nor GONE (the service would record a deletion
   * outside Gantry, racing the deletion it asked for). In memory only: after a restart
   * mid-deletion the next scan reports what is left as it finds it.
   */
  readonly deleting = new Set<string>();

  constructor(stateDir: string) {
    const dir = join(stateDir, 'checkpoints');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'state.json');
    this.state = empty();
    if (existsSync(this.path)) {
      try {
        this.state = { ...empty(), ...(JSON.parse(readFileSync(this.path, 'utf8')) as Partial<CheckpointHookState>) };
      } catch {
        renameSync(this.path, `${this.path}.corrupt-${Date.now()}`);
      }
    }
  }

  save(): void {
    const tmp = `${this.path}.tmp`;
    // Tokens are secrets of the jobs: readable by the agent's user only.
    writeFileSync(tmp, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(tmp, this.path);
  }
}
