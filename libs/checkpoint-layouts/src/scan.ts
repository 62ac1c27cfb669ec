import { basename, dirname, join, resolve } from 'node:path';
import { message, statusOf, type Assessment } from './assess.js';
import { DEFAULT_LIMITS, FsView, type Entry } from './fsview.js';
import { LAYOUTS, MARKER_FILE, hasMarker, type Candidate, type Layout } from './layouts.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat, type FormatOption, type FoundCheckpoint, type ScanOptions } from './types.js';

// Detection order for 'auto': the layouts with a distinctive top-level name first; plain DCP last,
// for directories no other layout claimed.
const AUTO_ORDER: CheckpointFormat[] = ['megatron', 'deepspeed', 'hf', 'torchtitan'];

function checkFormat(format: FormatOption): void {
  if (format !== 'auto' && !CHECKPOINT_FORMATS.includes(format)) throw new TypeError(`unknown checkpoint format ${JSON.stringify(format)}; expected auto or one of ${CHECKPOINT_FORMATS.join(', ')}`);
}

/**
 * Every checkpoint in a job's checkpoint directory, ordered by step (those without a step last),
 * each COMPLETE, INCOMPLETE or CORRUPT with reasons. Reads only; never follows a symlink out of
 * `dir`; never throws on what it finds on disk (a missing `dir` gives []).
 */
export async function scanCheckpoints(dir: string, options: ScanOptions = {}): Promise<FoundCheckpoint[]> {
  const format = options.format ?? 'auto';
  checkFormat(format);
  const root = resolve(dir);
  const view = await FsView.open(root, { ...DEFAULT_LIMITS, ...options.limits });
  if (!view) return [];
  let entries: Entry[];
  try {
    entries = await view.list(root);
  } catch {
    return [];
  }
  const candidates: Candidate[] = [];
  const layouts: Layout[] = format === 'auto' ? AUTO_ORDER.map((f) => LAYOUTS[f]) : [LAYOUTS[format]];
  for (const layout of layouts) {
    try {
      if (format === 'auto' && !(await layout.detect(view, root, entries))) continue;
      for (const c of await layout.discover(view, root, entries)) if (!candidates.some((x) => x.path === c.path)) candidates.push(c);
    } catch {
      // a layout that cannot even list what it looks for contributes nothing
    }
  }
  if (format === 'auto') {
    try {
      const rest = await LAYOUTS.dcp.discover(view, root, entries);
      for (const c of rest) if (!candidates.some((x) => x.path === c.path)) candidates.push(c);
    } catch {
      // as above
    }
    // Directories no framework layout claimed but holding Gantry's GANTRY_COMPLETE marker.
    try {
      for (const c of await LAYOUTS.marker.discover(view, root, entries)) {
        if (!candidates.some((x) => x.path === c.path) && (await hasMarker(view, c.path))) candidates.push(c);
      }
    } catch {
      // as above
    }
  }
  const found: FoundCheckpoint[] = [];
  for (const c of candidates) found.push(await finish(view, c, options.checksums === true));
  return found.sort(byStep);
}

/**
 * One checkpoint directory, assessed as `format` ('auto': from its name and contents). Trackers
 * kept beside it (Megatron's latest_checkpointed_iteration.txt, DeepSpeed's latest) are read from
 * its parent directory, which bounds the symlinks followed.
 */
export async function checkCheckpoint(path: string, format: FormatOption = 'auto', options: Omit<ScanOptions, 'format'> = {}): Promise<FoundCheckpoint> {
  checkFormat(format);
  const abs = resolve(path);
  const parent = dirname(abs);
  const name = basename(abs);
  const fmt: CheckpointFormat = format === 'auto' ? await guessFormat(abs, name) : format;
  const view = await FsView.open(parent, { ...DEFAULT_LIMITS, ...options.limits });
  if (!view) return missing(fmt, abs, name, `${parent} does not exist`);
  let c: Candidate;
  try {
    c = await LAYOUTS[fmt].single(view, parent, name);
  } catch (err) {
    return missing(fmt, abs, name, message(err));
  }
  return finish(view, c, options.checksums === true);
}

async function guessFormat(abs: string, name: string): Promise<CheckpointFormat> {
  const own = await FsView.open(abs, DEFAULT_LIMITS);
  const listed = own ? await own.list(abs).catch(() => [] as Entry[]) : [];
  const frameworkMarkers = ['.metadata', '.metadata.tmp', 'trainer_state.json', 'metadata.json', 'model.safetensors.index.json'];
  if (listed.some((e) => e.name === MARKER_FILE) && !listed.some((e) => frameworkMarkers.includes(e.name) || e.name.endsWith('.pt') || e.name.endsWith('.distcp'))) return 'marker';
  if (/^(iter_\d+|release)$/.test(name)) return 'megatron';
  if (/^global_step\d+$/.test(name)) return 'deepspeed';
  if (/^checkpoint-\d+$/.test(name)) return 'hf';
  if (/^step-\d+$/.test(name)) return 'torchtitan';
  const view = await FsView.open(abs, DEFAULT_LIMITS);
  const entries = view ? await view.list(abs).catch(() => [] as Entry[]) : [];
  if (entries.some((e) => e.name === 'trainer_state.json')) return 'hf';
  if (entries.some((e) => e.name === 'metadata.json' || e.name.startsWith('mp_rank_'))) return 'megatron';
  if (entries.some((e) => e.name.endsWith('_model_states.pt') || e.name.endsWith('_optim_states.pt'))) return 'deepspeed';
  return 'dcp';
}

function missing(format: CheckpointFormat, path: string, name: string, why: string): FoundCheckpoint {
  return { format, path, name, step: null, status: 'CORRUPT', reasons: [why], notes: [], latest: false, files: [], totalBytes: 0 };
}

async function finish(view: FsView, c: Candidate, checksums: boolean): Promise<FoundCheckpoint> {
  let a: Assessment;
  try {
    a = await c.assess();
  } catch (err) {
    a = { marker: true, problems: [`could not be checked: ${message(err)}`], notes: [] };
  }
  const out: FoundCheckpoint = {
    format: c.format,
    ...(a.variant ? { variant: a.variant } : {}),
    path: c.path,
    name: c.name,
    step: c.step,
    status: statusOf(a),
    reasons: statusOf(a) === 'COMPLETE' ? [] : a.problems,
    notes: [...a.notes],
    latest: c.latest,
    files: [],
    totalBytes: 0,
  };
  if (c.missing) return out;
  try {
    const { files, skipped } = await view.walk(c.path);
    out.files = files;
    out.totalBytes = files.reduce((n, f) => n + f.size, 0);
    out.notes.push(...skipped);
  } catch (err) {
    out.notes.push(`files not listed: ${message(err)}`);
  }
  if (checksums) {
    for (const f of out.files) {
      try {
        f.sha256 = await view.sha256(join(c.path, f.path));
      } catch (err) {
        out.notes.push(`${f.path}: no checksum (${message(err)})`);
      }
    }
  }
  return out;
}

function byStep(a: FoundCheckpoint, b: FoundCheckpoint): number {
  if (a.step !== b.step) {
    if (a.step === null) return 1;
    if (b.step === null) return -1;
    return a.step - b.step;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
