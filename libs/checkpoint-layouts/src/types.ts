import type { Limits } from './fsview.js';

/** `marker`: Gantry's own layout, any directory holding a `GANTRY_COMPLETE` file is complete. */
export type CheckpointFormat = 'dcp' | 'megatron' | 'deepspeed' | 'hf' | 'torchtitan' | 'marker';
export type FormatOption = 'auto' | CheckpointFormat;
export const CHECKPOINT_FORMATS: readonly CheckpointFormat[] = ['dcp', 'megatron', 'deepspeed', 'hf', 'torchtitan', 'marker'];

/**
 * COMPLETE: the layout's completion marker is present and everything it names is there in full.
 * INCOMPLETE: no completion marker yet: still being written, or abandoned by a crash.
 * CORRUPT: a completion marker claims the checkpoint but a file is missing, short or unreadable.
 */
export type CheckpointStatus = 'COMPLETE' | 'INCOMPLETE' | 'CORRUPT';

export interface CheckpointFile {
  /** Path relative to the checkpoint directory, `/`-separated. */
  path: string;
  size: number;
  /** Hex sha256, only with `checksums: true`. */
  sha256?: string;
}

export interface FoundCheckpoint {
  format: CheckpointFormat;
  /** Layout variant, e.g. Megatron `torch_dist` | `torch_dcp` | `torch`, DeepSpeed `zero3`, TorchTitan `hf`. */
  variant?: string;
  /** Absolute path of the checkpoint directory (as given, not symlink-resolved). */
  path: string;
  /** Directory name, e.g. `iter_0002000`, `global_step1000`, `checkpoint-500`, `step-500`. */
  name: string;
  /** Training step from the directory name (Megatron `release` is 0); null when the name has none. */
  step: number | null;
  status: CheckpointStatus;
  /** Why the checkpoint is not COMPLETE; empty when it is. */
  reasons: string[];
  /** Observations that do not change the status (stale files, unverifiable parts). */
  notes: string[];
  /** The layout's own "latest" pointer names this checkpoint (Megatron tracker, DeepSpeed `latest`). */
  latest: boolean;
  files: CheckpointFile[];
  totalBytes: number;
}

export interface ScanOptions {
  /** Layout to look for; 'auto' (default) detects it from the directory. */
  format?: FormatOption;
  /** Compute sha256 of every file of every checkpoint found (streamed). Default false. */
  checksums?: boolean;
  /** Bounds on what is read; see DEFAULT_LIMITS. */
  limits?: Partial<Limits>;
}
