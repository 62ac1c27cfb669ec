// Shared pieces of the per-layout checks: the assessment record, JSON reading, and the PyTorch
// DCP rule, which Megatron torch_dist/torch_dcp and TorchTitan reuse.
import { join } from 'node:path';
import { CheckError, FsView, type Entry } from './fsview.js';
import { PickleError, PyDict, PyObject, asInt, attrs, describe, field, unpickle, type PyValue } from './pickle.js';
import type { CheckpointStatus } from './types.js';

/**
 * What a layout check found. `marker`: the layout's completion marker claims the checkpoint is
 * done. `problems`: what is missing or wrong. Status: no marker -> INCOMPLETE; marker with
 * problems -> CORRUPT; marker without problems -> COMPLETE.
 */
export interface Assessment {
  marker: boolean;
  problems: string[];
  notes: string[];
  variant?: string;
}

export function statusOf(a: Assessment): CheckpointStatus {
  if (!a.marker) return 'INCOMPLETE';
  return a.problems.length > 0 ? 'CORRUPT' : 'COMPLETE';
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs a check; a CheckError (or any error) becomes a problem instead of escaping. */
export async function attempt<T>(problems: string[], fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    problems.push(message(err));
    return undefined;
  }
}

export async function readJson(view: FsView, abs: string, label = view.label(abs)): Promise<unknown> {
  const buf = await view.readFile(abs, view.limits.maxJsonBytes, label);
  try {
    return JSON.parse(buf.toString('utf8')) as unknown;
  } catch {
    throw new CheckError(`${label} is not valid JSON (${buf.length} bytes; cut short while being written?)`);
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function names(entries: Entry[]): Set<string> {
  return new Set(entries.map((e) => e.name));
}

/** Integer from a directory name's digits; null when absent or not a safe integer. */
export function stepFrom(digits: string | undefined): number | null {
  if (digits === undefined) return null;
  const n = Number(digits);
  return Number.isSafeInteger(n) ? n : null;
}

// ----- PyTorch DCP ----------------------------------------------------------------------------

const METADATA_CLASS = 'torch.distributed.checkpoint.metadata.Metadata';
const STORAGE_INFO_CLASS = 'torch.distributed.checkpoint.filesystem._StorageInfo';

export interface DcpStorage {
  /** relative_path -> bytes the file must have at least (max offset + length). */
  files: Map<string, number>;
  items: number;
  version?: string;
}

/** The storage files a DCP `.metadata` pickle names, with the size each must have. */
export function dcpStorage(value: PyValue): DcpStorage {
  if (!(value instanceof PyObject) || value.className !== METADATA_CLASS)
    throw new CheckError(`.metadata holds ${describe(value)}, not ${METADATA_CLASS}`);
  const state = attrs(value);
  if (!state) throw new CheckError('.metadata: the Metadata object has no fields');
  const sdm = state.get('state_dict_metadata');
  const storage = state.get('storage_data');
  const version = state.get('version');
  const files = new Map<string, number>();
  if (!(storage instanceof PyDict)) {
    if (sdm instanceof PyDict && sdm.size === 0) return { files, items: 0 };
    throw new CheckError(`.metadata: storage_data is ${describe(storage)}, not a dict of _StorageInfo; the files cannot be verified`);
  }
  let i = 0;
  for (const info of storage.values()) {
    i++;
    if (!(info instanceof PyObject) || info.className !== STORAGE_INFO_CLASS)
      throw new CheckError(`.metadata: storage_data entry ${i} is ${describe(info)}, not ${STORAGE_INFO_CLASS}`);
    const rel = field(info, 'relative_path');
    const offset = asInt(field(info, 'offset'));
    const length = asInt(field(info, 'length'));
    if (typeof rel !== 'string' || offset === undefined || length === undefined || offset < 0 || length < 0)
      throw new CheckError(`.metadata: storage_data entry ${i} lacks a valid relative_path/offset/length`);
    files.set(rel, Math.max(files.get(rel) ?? 0, offset + length));
  }
  return { files, items: storage.size, version: typeof version === 'string' ? version : undefined };
}

/**
 * The DCP rule (torch/distributed/checkpoint/filesystem.py, FileSystemWriter.finish): `.metadata`
 * is written last, through `.metadata.tmp` and a rename; complete when it is present, parses, and
 * every file its storage_data names exists with at least max(offset + length) bytes. The number of
 * `.distcp` files proves nothing: a rank with nothing to write makes no file.
 */
export async function assessDcp(view: FsView, dir: string, entries?: Entry[]): Promise<Assessment & { storage?: DcpStorage }> {
  const a: Assessment & { storage?: DcpStorage } = { marker: false, problems: [], notes: [] };
  const list = entries ?? (await view.list(dir));
  const present = names(list);
  const distcp = list.filter((e) => e.name.endsWith('.distcp')).map((e) => e.name);
  if (!present.has('.metadata')) {
    if (present.has('.metadata.tmp'))
      a.problems.push('.metadata.tmp present but no .metadata: the coordinator has not renamed it yet (save in progress or crashed)');
    else a.problems.push(`no .metadata (written last by DCP)${distcp.length ? `; ${distcp.length} .distcp file(s) so far` : ''}`);
    return a;
  }
  a.marker = true;
  if (present.has('.metadata.tmp')) a.notes.push('.metadata.tmp is also present: a new save into this directory may be finishing');
  let storage: DcpStorage;
  try {
    const buf = await view.readFile(join(dir, '.metadata'), view.limits.maxPickleBytes, '.metadata');
    storage = dcpStorage(unpickle(buf, { maxBytes: view.limits.maxPickleBytes }).value);
  } catch (err) {
    a.problems.push(err instanceof PickleError ? `.metadata is not a readable pickle (${err.message})` : message(err));
    return a;
  }
  a.storage = storage;
  for (const [rel, need] of [...storage.files].sort(([x], [y]) => (x < y ? -1 : 1))) {
    try {
      const size = await view.fileSize(FsView.child(dir, rel), rel);
      if (size < need) a.problems.push(`${rel} is ${size} bytes but .metadata storage_data needs at least ${need} (truncated)`);
    } catch (err) {
      a.problems.push(`${message(err)}${message(err).endsWith('missing') ? ' (named by .metadata storage_data)' : ''}`);
    }
  }
  const stale = distcp.filter((n) => !storage.files.has(n));
  if (stale.length) a.notes.push(`${stale.length} .distcp file(s) not named by .metadata (left by an earlier save?): ${stale.slice(0, 5).join(', ')}`);
  return a;
}
