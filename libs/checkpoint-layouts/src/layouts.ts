// One module per framework would be five small files; they share a shape, so they live together.
// Each layout finds its checkpoint directories under a root (discover) or takes one directory
// (single) and says how to assess it. Sources: shared/data/checkpoints/LAYOUTS.md, which cites
// the frameworks' code at fixed commits.
import { basename, join } from 'node:path';
import { assessDcp, attempt, isRecord, message, names, readJson, stepFrom, type Assessment } from './assess.js';
import { CheckError, FsView, type Entry } from './fsview.js';
import { asInt, attrs, field, seq } from './pickle.js';
import { NotTorchFile, checkSafetensors, checkTorchFile } from './torchfile.js';
import type { CheckpointFormat } from './types.js';

export interface Candidate {
  format: CheckpointFormat;
  path: string;
  name: string;
  step: number | null;
  latest: boolean;
  /** The directory does not exist (a tracker names it); no files are listed. */
  missing?: boolean;
  assess(): Promise<Assessment>;
}

export interface Layout {
  format: CheckpointFormat;
  /** Whether `root`'s entries look like this layout's checkpoint directory. */
  detect(view: FsView, root: string, entries: Entry[]): Promise<boolean>;
  discover(view: FsView, root: string, entries: Entry[]): Promise<Candidate[]>;
  /** One checkpoint directory `parent/name`, assessed as this layout. */
  single(view: FsView, parent: string, name: string): Promise<Candidate>;
}

const dirs = (entries: Entry[], re: RegExp): Entry[] => entries.filter((e) => (e.kind === 'dir' || e.kind === 'outside' || e.kind === 'broken') && re.test(e.name));

async function readSmallText(view: FsView, abs: string): Promise<string> {
  return (await view.readFile(abs, 4096)).toString('utf8');
}

function unreachable(e: Entry): Assessment | undefined {
  if (e.kind === 'outside') return { marker: true, problems: [`${e.name} is a symlink to outside the scanned directory; not followed`], notes: [] };
  if (e.kind === 'broken') return { marker: true, problems: [`${e.name} is a broken symlink`], notes: [] };
  return undefined;
}

async function listOr(view: FsView, dir: string, a: Assessment): Promise<Entry[] | undefined> {
  try {
    return await view.list(dir);
  } catch (err) {
    a.marker = true;
    a.problems.push(message(err));
    return undefined;
  }
}

// ----- Hugging Face weights (index + safetensors), shared by HF Trainer and TorchTitan's HF export ---

/** Checks weight files; returns the names it checked. */
async function checkWeights(view: FsView, dir: string, entries: Entry[], problems: string[]): Promise<Set<string>> {
  const present = names(entries);
  const checked = new Set<string>();
  for (const index of ['model.safetensors.index.json', 'pytorch_model.bin.index.json', 'adapter_model.safetensors.index.json']) {
    if (!present.has(index)) continue;
    const json = await attempt(problems, () => readJson(view, join(dir, index), index));
    if (json === undefined) continue;
    const map = isRecord(json) ? json.weight_map : undefined;
    if (!isRecord(map)) {
      problems.push(`${index} has no weight_map object`);
      continue;
    }
    const files = [...new Set(Object.values(map))];
    if (!files.every((f): f is string => typeof f === 'string')) {
      problems.push(`${index}: weight_map values are not file names`);
      continue;
    }
    const byFile = new Map<string, string[]>();
    for (const [tensor, f] of Object.entries(map)) {
      const list = byFile.get(f as string) ?? [];
      list.push(tensor);
      byFile.set(f as string, list);
    }
    for (const f of files.sort()) {
      checked.add(f);
      await attempt(problems, async () => {
        const abs = FsView.child(dir, f);
        if (f.endsWith('.safetensors')) {
          const tensors = new Set(await checkSafetensors(view, abs, f));
          const lost = (byFile.get(f) ?? []).filter((t) => !tensors.has(t));
          if (lost.length) throw new CheckError(`${f} lacks ${lost.length} tensor(s) that ${index} maps to it, e.g. ${lost[0]}`);
        } else await checkTorchFile(view, abs, false, f);
      });
    }
  }
  for (const e of entries) {
    if (e.kind !== 'file' || checked.has(e.name)) continue;
    if (e.name.endsWith('.safetensors')) await attempt(problems, () => checkSafetensors(view, e.path, e.name));
  }
  return checked;
}

/** torch.save files directly in `dir` (.pt, .pth, .bin): complete archives? */
async function checkTorchFiles(view: FsView, entries: Entry[], problems: string[], notes: string[], skip: Set<string>): Promise<void> {
  for (const e of entries) {
    if (e.kind !== 'file' || skip.has(e.name) || !/\.(pt|pth|bin)$/.test(e.name)) continue;
    try {
      const r = await checkTorchFile(view, e.path, false, e.name);
      if (r.format === 'legacy') notes.push(`${e.name} uses the legacy torch.save format; its completeness is not checked`);
    } catch (err) {
      if (err instanceof NotTorchFile) notes.push(`${e.name} is not a torch.save file; not checked`);
      else problems.push(message(err));
    }
  }
}

// ----- PyTorch DCP (torch/distributed/checkpoint/filesystem.py) ---------------------------------

const DCP_MARKS = (e: Entry): boolean => e.name === '.metadata' || e.name === '.metadata.tmp' || (e.kind === 'file' && e.name.endsWith('.distcp'));

function trailingStep(name: string): number | null {
  return stepFrom(/(\d+)(?!.*\d)/.exec(name)?.[1]);
}

export const dcp: Layout = {
  format: 'dcp',
  async detect(_view, _root, entries) {
    return entries.some(DCP_MARKS);
  },
  async discover(view, root, entries) {
    // the root itself is one checkpoint, or each sub-directory holding DCP files is
    if (entries.some(DCP_MARKS)) return [dcpCandidate(view, root, basename(root))];
    const out: Candidate[] = [];
    for (const e of entries) {
      if (e.kind !== 'dir') continue;
      const sub = await view.list(e.path).catch(() => [] as Entry[]);
      if (sub.some(DCP_MARKS)) out.push(dcpCandidate(view, e.path, e.name));
    }
    return out;
  },
  async single(view, parent, name) {
    return dcpCandidate(view, join(parent, name), name);
  },
};

function dcpCandidate(view: FsView, path: string, name: string): Candidate {
  return {
    format: 'dcp',
    path,
    name,
    step: trailingStep(name),
    latest: false,
    async assess() {
      const a: Assessment = { marker: false, problems: [], notes: [] };
      const entries = await listOr(view, path, a);
      return entries ? assessDcp(view, path, entries) : a;
    },
  };
}

// ----- Megatron-LM (megatron/training/checkpointing.py, dist_checkpointing) ---------------------

const TRACKER = 'latest_checkpointed_iteration.txt';
const ITER_RE = /^(?:iter_(\d+)|release)$/;

type Tracker = { kind: 'none' } | { kind: 'bad'; text: string; why: string } | { kind: 'ok'; step: number; text: string };

async function readTracker(view: FsView, root: string, entries: Entry[]): Promise<Tracker> {
  if (!names(entries).has(TRACKER)) return { kind: 'none' };
  let text: string;
  try {
    text = (await readSmallText(view, join(root, TRACKER))).trim();
  } catch (err) {
    return { kind: 'bad', text: '', why: message(err) };
  }
  if (text === 'release') return { kind: 'ok', step: 0, text };
  if (/^\d+$/.test(text) && Number.isSafeInteger(Number(text))) return { kind: 'ok', step: Number(text), text };
  return { kind: 'bad', text, why: `${TRACKER} holds ${JSON.stringify(text.slice(0, 40))}, not an iteration or "release"` };
}

async function assessMegatronDir(view: FsView, dir: string, siblingsUseMetadataJson: boolean): Promise<Assessment> {
  const a: Assessment = { marker: false, problems: [], notes: [] };
  const entries = await listOr(view, dir, a);
  if (!entries) return a;
  const present = names(entries);
  if (present.has('metadata.json')) {
    a.variant = 'torch_dist';
    a.marker = true;
    const cfg = await attempt(a.problems, () => readJson(view, join(dir, 'metadata.json'), 'metadata.json'));
    if (cfg !== undefined && !(isRecord(cfg) && typeof cfg.sharded_backend === 'string')) a.problems.push('metadata.json is not a Megatron CheckpointingConfig (no sharded_backend)');
    if (isRecord(cfg) && cfg.sharded_backend !== undefined && cfg.sharded_backend !== 'torch_dist') {
      a.notes.push(`sharded_backend ${String(cfg.sharded_backend)}: only metadata.json checked`);
      return a;
    }
    const d = await assessDcp(view, dir, entries);
    if (!d.marker) a.problems.push('metadata.json is present but .metadata (written before it) is missing');
    else a.problems.push(...d.problems);
    a.notes.push(...d.notes);
    if (isRecord(cfg) && cfg.common_backend !== undefined) {
      // core_v0.9 .. core_v0.18: rank 0 saves common.pt before the sharded save
      await attempt(a.problems, () => checkTorchFile(view, join(dir, 'common.pt'), false, 'common.pt'));
    }
    return a;
  }
  if (entries.some((e) => e.name.startsWith('mp_rank_'))) {
    a.variant = 'torch';
    a.marker = true;
    await assessMegatronLegacy(view, dir, entries, a);
    return a;
  }
  if (siblingsUseMetadataJson && entries.some(DCP_MARKS)) {
    a.variant = 'torch_dist';
    a.problems.push('no metadata.json (Megatron writes it after all shards and .metadata; the other checkpoints here have one)');
    const d = await assessDcp(view, dir, entries);
    a.notes.push(...d.problems.filter((p) => p.startsWith('.metadata.tmp')), ...d.notes);
    return a;
  }
  if (entries.some(DCP_MARKS)) {
    a.variant = 'torch_dcp';
    const d = await assessDcp(view, dir, entries);
    return { ...d, variant: 'torch_dcp' };
  }
  a.problems.push('no metadata.json, .metadata or mp_rank_* directories yet');
  return a;
}

const MP_RE = /^mp_rank_(\d{2,})(?:_(\d{3,}))?(?:_(\d{3,}))?$/;

async function assessMegatronLegacy(view: FsView, dir: string, entries: Entry[], a: Assessment): Promise<void> {
  const ranks = entries
    .filter((e) => e.kind === 'dir' && MP_RE.test(e.name))
    .map((e) => ({ e, parts: MP_RE.exec(e.name)!.slice(1).filter((x): x is string => x !== undefined).map(Number) }));
  for (const e of entries) if (e.name.startsWith('mp_rank_') && !ranks.some((r) => r.e === e)) a.problems.push(`${e.name}: not a readable mp_rank_* directory`);
  if (ranks.length === 0) return;
  const arity = ranks[0]!.parts.length;
  if (ranks.some((r) => r.parts.length !== arity)) {
    a.problems.push('mp_rank_* directories mix naming schemes (TP, TP_PP, TP_PP_EP)');
    return;
  }
  // Parallel sizes recorded in the checkpoint's args (argparse.Namespace), from the first rank's file.
  let sizes: number[] | undefined;
  let hasDistribOptim = false;
  let readArgs = true;
  for (const r of ranks) {
    const sub = await view.list(r.e.path).catch((err: unknown) => {
      a.problems.push(message(err));
      return [] as Entry[];
    });
    const subNames = names(sub);
    if (subNames.has('distrib_optim.pt')) hasDistribOptim = true;
    const file = `${r.e.name}/model_optim_rng.pt`;
    const t = await attempt(a.problems, () => checkTorchFile(view, join(r.e.path, 'model_optim_rng.pt'), readArgs, file));
    if (t?.value !== undefined && readArgs) {
      readArgs = false;
      const args = attrs(field(t.value, 'args'));
      const tp = asInt(args?.get('tensor_model_parallel_size'));
      const pp = asInt(args?.get('pipeline_model_parallel_size'));
      const ep = asInt(args?.get('expert_model_parallel_size')) ?? 1;
      if (tp !== undefined && pp !== undefined && tp > 0 && pp > 0 && ep > 0) {
        const want = [tp, ...(pp > 1 ? [pp] : []), ...(ep > 1 ? [ep] : [])];
        if (want.length === arity) sizes = want;
        else a.notes.push(`args say TP=${tp} PP=${pp} EP=${ep}, which does not match the mp_rank_* naming; sizes inferred from the directories`);
      }
    }
  }
  if (hasDistribOptim) {
    for (const r of ranks) await attempt(a.problems, () => checkTorchFile(view, join(r.e.path, 'distrib_optim.pt'), false, `${r.e.name}/distrib_optim.pt`));
  }
  const from = sizes ? 'args in model_optim_rng.pt' : 'the directories present';
  const dims = sizes ?? Array.from({ length: arity }, (_, i) => maxOf(ranks.map((r) => r.parts[i]!)) + 1);
  const have = new Set(ranks.map((r) => r.parts.join('_')));
  const missing: string[] = [];
  const total = dims.reduce((x, y) => x * y, 1);
  if (total > 1_000_000) {
    a.problems.push(`model-parallel grid ${dims.join('x')} is implausibly large`);
    return;
  }
  for (let i = 0; i < total; i++) {
    let rest = i;
    const parts = dims.map((d) => {
      const v = rest % d;
      rest = Math.floor(rest / d);
      return v;
    });
    if (!have.has(parts.join('_'))) missing.push(`mp_rank_${parts.map((p, j) => String(p).padStart(j === 0 ? 2 : 3, '0')).join('_')}/`);
  }
  if (missing.length)
    a.problems.push(`${missing.length} model-parallel rank director${missing.length === 1 ? 'y' : 'ies'} missing (${['TP', 'PP', 'EP'].slice(0, arity).map((n, i) => `${n}=${dims[i]}`).join(' ')} from ${from}): ${missing.slice(0, 5).join(', ')}`);
}

function megatronCandidate(view: FsView, e: Entry, tracker: Tracker, siblingsUseMetadataJson: boolean): Candidate {
  const m = ITER_RE.exec(e.name);
  const step = e.name === 'release' ? 0 : stepFrom(m?.[1]);
  const latest = tracker.kind === 'ok' && (tracker.text === 'release' ? e.name === 'release' : e.name !== 'release' && step === tracker.step);
  return {
    format: 'megatron',
    path: e.path,
    name: e.name,
    step,
    latest,
    async assess() {
      const blocked = unreachable(e);
      if (blocked) return blocked;
      const a = await assessMegatronDir(view, e.path, siblingsUseMetadataJson);
      if (tracker.kind === 'none') {
        return { ...a, marker: false, problems: [`no ${TRACKER} beside it: Megatron writes it after every rank finished, so no save has completed`, ...a.problems] };
      }
      if (tracker.kind === 'bad') return { ...a, problems: [`${tracker.why}: Megatron cannot load from this directory`, ...a.problems] };
      if (step !== null && step > tracker.step)
        return { ...a, marker: false, problems: [`newer than the tracker (iteration ${tracker.text}): the save has not finished (the tracker is written last)`, ...a.problems] };
      if (latest) return { ...a, marker: true, problems: a.marker ? a.problems : [`the tracker names this iteration but ${a.problems.join('; ')}`] };
      // older than the tracker: complete on its own evidence, else an abandoned save
      if (a.variant === 'torch' && a.problems.length) return { ...a, marker: false, problems: ['older than the tracker and incomplete (an abandoned save?)', ...a.problems] };
      return a;
    },
  };
}

export const megatron: Layout = {
  format: 'megatron',
  async detect(_view, _root, entries) {
    return names(entries).has(TRACKER) || dirs(entries, /^iter_\d+$/).length > 0;
  },
  async discover(view, root, entries) {
    const tracker = await readTracker(view, root, entries);
    const iters = dirs(entries, ITER_RE);
    let usesJson = false;
    for (const e of iters) if (e.kind === 'dir' && (await view.exists(join(e.path, 'metadata.json')))) usesJson = true;
    const out = iters.map((e) => megatronCandidate(view, e, tracker, usesJson));
    if (tracker.kind === 'ok') {
      const want = tracker.text === 'release' ? 'release' : `iter_${String(tracker.step).padStart(7, '0')}`;
      if (!out.some((c) => c.latest)) {
        out.push({
          format: 'megatron',
          path: join(root, want),
          name: want,
          step: tracker.step,
          latest: true,
          missing: true,
          async assess() {
            return { marker: true, problems: [`${TRACKER} names iteration ${tracker.text} but ${want}/ does not exist`], notes: [] };
          },
        });
      }
    }
    return out;
  },
  async single(view, parent, name) {
    const entries = await view.list(parent);
    const tracker = await readTracker(view, parent, entries);
    const e = entries.find((x) => x.name === name) ?? { name, path: join(parent, name), kind: 'broken' as const, size: 0, symlink: false };
    let usesJson = false;
    for (const x of dirs(entries, ITER_RE)) if (x.kind === 'dir' && (await view.exists(join(x.path, 'metadata.json')))) usesJson = true;
    return megatronCandidate(view, e, tracker, usesJson);
  },
};

// ----- DeepSpeed (deepspeed/runtime/engine.py, deepspeed/utils/zero_to_fp32.py) -----------------

const ZERO_OPTIM_RE = /^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_(\d+)_optim_states\.pt$/;
const ZERO3_MODEL_RE = /^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_(\d+)_model_states\.pt$/;
const MP_MODEL_RE = /^mp_rank_(\d+)_model_states\.pt$/;
/** Largest data- or model-parallel size believed from inside a file; beyond it the directory's own names are used. */
const MAX_RANKS = 1 << 20;

/** Largest of the numbers (-Infinity for none), without spreading them as call arguments. */
function maxOf(xs: Iterable<number>): number {
  let m = -Infinity;
  for (const x of xs) if (x > m) m = x;
  return m;
}

function rangeGaps(have: Set<number>, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n && out.length < 8; i++) if (!have.has(i)) out.push(i);
  return out;
}

/**
 * The count of `*_optim_states.pt` must equal the partition_count recorded inside them
 * (zero_to_fp32.parse_optim_states: optimizer_state_dict.partition_count, a list -> max), per
 * model-parallel rank; every torch.save archive must be whole. `latest` alone proves nothing:
 * rank 0 writes it without waiting for the other ranks.
 */
export async function assessDeepspeedTag(view: FsView, dir: string): Promise<Assessment & { complete: boolean }> {
  const a: Assessment & { complete: boolean } = { marker: false, problems: [], notes: [], complete: false };
  const entries = await listOr(view, dir, a);
  if (!entries) return a;
  const files = entries.filter((e) => e.kind === 'file' || e.kind === 'outside' || e.kind === 'broken');
  const optim = files.filter((e) => e.name.endsWith('_optim_states.pt'));
  const model = files.filter((e) => e.name.endsWith('_model_states.pt') || e.name.endsWith('-model_states.pt'));
  if (optim.length + model.length === 0) {
    a.problems.push('no *_model_states.pt or *_optim_states.pt files yet');
    return a;
  }
  for (const e of files) if (e.kind !== 'file') a.problems.push(`${e.name} is ${e.kind === 'outside' ? 'a symlink to outside the scanned directory; not followed' : 'a broken symlink'}`);
  // every model-states archive whole; sizes from the first readable one
  let worlds: { dp?: number; mp?: number } | undefined;
  for (const e of model.filter((x) => x.kind === 'file')) {
    const t = await attempt(a.problems, () => checkTorchFile(view, e.path, worlds === undefined, e.name));
    if (t?.value !== undefined && worlds === undefined) worlds = { dp: asInt(field(t.value, 'dp_world_size')), mp: asInt(field(t.value, 'mp_world_size')) };
  }
  // optimizer partitions
  const zero = optim.filter((e) => e.kind === 'file' && ZERO_OPTIM_RE.test(e.name));
  const counts = new Map<string, number>();
  let stage: number | undefined;
  for (const e of optim.filter((x) => x.kind === 'file')) {
    const t = await attempt(a.problems, () => checkTorchFile(view, e.path, ZERO_OPTIM_RE.test(e.name), e.name));
    if (t?.value === undefined) continue;
    const osd = field(t.value, 'optimizer_state_dict');
    const pc = field(osd, 'partition_count');
    const list = seq(pc);
    const n = list ? maxOf(list.map((x) => asInt(x) ?? -1)) : asInt(pc);
    if (n === undefined || n < 1) {
      a.problems.push(`${e.name}: no partition_count in optimizer_state_dict (not a ZeRO optimizer partition?)`);
      continue;
    }
    counts.set(e.name, n);
    stage ??= asInt(field(osd, 'zero_stage'));
  }
  const distinct = new Set(counts.values());
  if (distinct.size > 1) a.problems.push(`the *_optim_states.pt files disagree on partition_count (${[...distinct].join(', ')}): files from different saves?`);
  if (zero.length > 0 && distinct.size === 1) {
    const n = [...distinct][0]!;
    const byMp = new Map<number, Set<number>>();
    for (const e of zero) {
      const [, dp, mp] = ZERO_OPTIM_RE.exec(e.name)!;
      const s = byMp.get(Number(mp)) ?? new Set<number>();
      s.add(Number(dp));
      byMp.set(Number(mp), s);
    }
    const recorded = worlds?.mp;
    const mps = recorded !== undefined && recorded > 0 && recorded <= MAX_RANKS ? recorded : maxOf([...byMp.keys()]) + 1;
    for (let mp = 0; mp < mps; mp++) {
      const have = byMp.get(mp) ?? new Set<number>();
      if (have.size !== n) {
        const gaps = rangeGaps(have, n);
        a.problems.push(
          `expected ${n} *_optim_states.pt (partition_count recorded inside them) for mp_rank_${String(mp).padStart(2, '0')}, found ${have.size}${gaps.length ? `; missing DP rank(s) ${gaps.join(', ')}` : ''}`,
        );
      }
    }
    a.variant = stage !== undefined ? `zero${stage}` : 'zero';
  } else if (optim.length > 0 && zero.length === 0) {
    a.notes.push('optimizer files are not ZeRO partitions (zero_pp_rank_*): only their archives were checked');
  } else if (optim.length === 0) {
    a.notes.push('no *_optim_states.pt (ZeRO stage 0, or saved without optimizer state): partition count not checkable');
  }
  // model-states set against the recorded world sizes
  if (worlds?.mp !== undefined && worlds.mp > 0 && worlds.mp <= MAX_RANKS) {
    const z3 = model.filter((e) => ZERO3_MODEL_RE.test(e.name));
    const flat = model.filter((e) => MP_MODEL_RE.test(e.name));
    if (z3.length > 0 && worlds.dp !== undefined && worlds.dp > 0 && worlds.dp <= MAX_RANKS) {
      const byMp = new Map<number, Set<number>>();
      for (const e of z3) {
        const [, dp, mp] = ZERO3_MODEL_RE.exec(e.name)!;
        const set = byMp.get(Number(mp)) ?? new Set<number>();
        set.add(Number(dp));
        byMp.set(Number(mp), set);
      }
      for (let mp = 0; mp < worlds.mp; mp++) {
        const gaps = rangeGaps(byMp.get(mp) ?? new Set<number>(), worlds.dp);
        if (gaps.length) a.problems.push(`ZeRO-3 model states for mp_rank_${String(mp).padStart(2, '0')} missing DP rank(s) ${gaps.join(', ')} (dp_world_size ${worlds.dp})`);
      }
    } else if (flat.length > 0) {
      const gaps = rangeGaps(new Set(flat.map((e) => Number(MP_MODEL_RE.exec(e.name)![1]))), worlds.mp);
      if (gaps.length) a.problems.push(`mp_rank_XX_model_states.pt missing for MP rank(s) ${gaps.join(', ')} (mp_world_size ${worlds.mp})`);
    }
  }
  a.complete = a.problems.length === 0;
  return a;
}

function isTag(name: string): boolean {
  return name.length > 0 && name.length < 256 && !name.includes('/') && !name.includes('\0') && name !== '.' && name !== '..';
}

function deepspeedCandidate(view: FsView, e: Entry, latestTag: string | undefined, latestStep: number | null): Candidate {
  const step = stepFrom(/^global_step(\d+)$/.exec(e.name)?.[1]) ?? trailingStep(e.name);
  const latest = latestTag === e.name;
  return {
    format: 'deepspeed',
    path: e.path,
    name: e.name,
    step,
    latest,
    async assess() {
      const blocked = unreachable(e);
      if (blocked) return blocked;
      const a = await assessDeepspeedTag(view, e.path);
      if (a.complete) {
        if (latestTag !== undefined && !latest && step !== null && latestStep !== null && step > latestStep)
          a.notes.push(`newer than \`latest\` (${latestTag}): rank 0 had not updated it yet`);
        return { ...a, marker: true };
      }
      // only `latest` claims a tag complete
      return { ...a, marker: latest, problems: latest ? [`\`latest\` names this tag but ${a.problems.join('; ')}`] : a.problems };
    },
  };
}

async function readLatestTag(view: FsView, root: string, entries: Entry[]): Promise<{ tag?: string; note?: string }> {
  if (!entries.some((e) => e.name === 'latest' && e.kind === 'file')) return {};
  try {
    const tag = (await readSmallText(view, join(root, 'latest'))).trim();
    return isTag(tag) ? { tag } : { note: `\`latest\` holds ${JSON.stringify(tag.slice(0, 40))}, not a tag name` };
  } catch (err) {
    return { note: message(err) };
  }
}

export const deepspeed: Layout = {
  format: 'deepspeed',
  async detect(_view, _root, entries) {
    return entries.some((e) => e.name === 'latest' && e.kind === 'file') || dirs(entries, /^global_step\d+$/).length > 0;
  },
  async discover(view, root, entries) {
    const { tag, note } = await readLatestTag(view, root, entries);
    const latestStep = tag ? (stepFrom(/^global_step(\d+)$/.exec(tag)?.[1]) ?? trailingStep(tag)) : null;
    const out: Candidate[] = [];
    for (const e of entries) {
      if (!(e.kind === 'dir' || e.kind === 'outside' || e.kind === 'broken')) continue;
      let isCkpt = /^global_step\d+$/.test(e.name) || e.name === tag;
      if (!isCkpt && e.kind === 'dir') {
        const sub = await view.list(e.path).catch(() => [] as Entry[]);
        isCkpt = sub.some((s) => s.name.endsWith('_model_states.pt') || s.name.endsWith('_optim_states.pt'));
      }
      if (isCkpt) out.push(deepspeedCandidate(view, e, tag, latestStep));
    }
    if (tag !== undefined && !out.some((c) => c.latest)) {
      out.push({
        format: 'deepspeed',
        path: join(root, tag),
        name: tag,
        step: latestStep,
        latest: true,
        missing: true,
        async assess() {
          return { marker: true, problems: [`\`latest\` names tag ${tag} but ${tag}/ does not exist`], notes: [] };
        },
      });
    }
    if (note) for (const c of out) c.assess = withNote(c.assess, note);
    return out;
  },
  async single(view, parent, name) {
    const entries = await view.list(parent);
    const { tag, note } = await readLatestTag(view, parent, entries);
    const latestStep = tag ? (stepFrom(/^global_step(\d+)$/.exec(tag)?.[1]) ?? trailingStep(tag)) : null;
    const e = entries.find((x) => x.name === name) ?? { name, path: join(parent, name), kind: 'broken' as const, size: 0, symlink: false };
    const c = deepspeedCandidate(view, e, tag, latestStep);
    if (note) c.assess = withNote(c.assess, note);
    return c;
  },
};

function withNote(fn: () => Promise<Assessment>, note: string): () => Promise<Assessment> {
  return async () => {
    const a = await fn();
    return { ...a, notes: [...a.notes, note] };
  };
}

// ----- Hugging Face Trainer (transformers trainer.py _save_checkpoint) --------------------------

const HF_RE = /^checkpoint-(\d+)$/;

function hfCandidate(view: FsView, e: Entry): Candidate {
  const step = stepFrom(HF_RE.exec(e.name)?.[1]);
  return {
    format: 'hf',
    path: e.path,
    name: e.name,
    step,
    latest: false,
    async assess() {
      const blocked = unreachable(e);
      if (blocked) return blocked;
      const a: Assessment = { marker: false, problems: [], notes: [] };
      const entries = await listOr(view, e.path, a);
      if (!entries) return a;
      const present = names(entries);
      if (present.has('trainer_state.json')) {
        a.marker = true;
        const state = await attempt(a.problems, () => readJson(view, join(e.path, 'trainer_state.json'), 'trainer_state.json'));
        if (state !== undefined) {
          if (!isRecord(state) || typeof state.global_step !== 'number') a.problems.push('trainer_state.json has no numeric global_step');
          else if (step !== null && state.global_step !== step) a.notes.push(`trainer_state.json says global_step ${state.global_step}, the directory name says ${step}`);
        }
      } else {
        a.problems.push('no trainer_state.json (the Trainer writes it last): save in progress or crashed');
      }
      const weights = await checkWeights(view, e.path, entries, a.problems);
      await checkTorchFiles(view, entries, a.problems, a.notes, weights);
      // DeepSpeed runs keep a whole DeepSpeed checkpoint inside (latest + global_stepN/)
      if (entries.some((x) => x.name === 'latest' && x.kind === 'file')) {
        const { tag, note } = await readLatestTag(view, e.path, entries);
        if (note) a.problems.push(note);
        if (tag) {
          const d = await assessDeepspeedTag(view, join(e.path, tag));
          a.variant = 'deepspeed';
          a.problems.push(...d.problems.map((p) => `${tag}/: ${p}`));
          a.notes.push(...d.notes.map((n) => `${tag}/: ${n}`));
        }
      }
      // FSDP runs (accelerate) save model/optimizer as DCP directories inside, e.g. pytorch_model_fsdp_0/
      for (const sub of entries) {
        if (sub.kind !== 'dir') continue;
        const inner = await view.list(sub.path).catch(() => [] as Entry[]);
        if (!inner.some(DCP_MARKS)) continue;
        const d = await assessDcp(view, sub.path, inner);
        a.problems.push(...d.problems.map((p) => `${sub.name}/: ${p}`));
        a.notes.push(...d.notes.map((n) => `${sub.name}/: ${n}`));
      }
      const rng = entries.map((x) => /^rng_state_(\d+)\.pth$/.exec(x.name)).filter((m) => m !== null);
      if (rng.length) {
        const gaps = rangeGaps(new Set(rng.map((m) => Number(m[1]))), maxOf(rng.map((m) => Number(m[1]))) + 1);
        if (gaps.length) a.notes.push(`rng_state_<i>.pth missing for process(es) ${gaps.join(', ')} (written by each process without a barrier)`);
      }
      return a;
    },
  };
}

export const hf: Layout = {
  format: 'hf',
  async detect(_view, _root, entries) {
    return dirs(entries, HF_RE).length > 0;
  },
  async discover(view, _root, entries) {
    // tmp-checkpoint-* (transformers ~4.36-4.38 staging) never matches and is ignored, as get_last_checkpoint does
    return dirs(entries, HF_RE).map((e) => hfCandidate(view, e));
  },
  async single(view, parent, name) {
    const entries = await view.list(parent);
    const e = entries.find((x) => x.name === name) ?? { name, path: join(parent, name), kind: 'broken' as const, size: 0, symlink: false };
    return hfCandidate(view, e);
  },
};

// ----- TorchTitan (torchtitan/components/checkpointer/dcp.py _find_load_step) -------------------

const STEP_RE = /^step-(\d+)$/;

function torchtitanCandidate(view: FsView, e: Entry): Candidate {
  return {
    format: 'torchtitan',
    path: e.path,
    name: e.name,
    step: stepFrom(STEP_RE.exec(e.name)?.[1]),
    latest: false,
    async assess() {
      const blocked = unreachable(e);
      if (blocked) return blocked;
      const a: Assessment = { marker: false, problems: [], notes: [] };
      const entries = await listOr(view, e.path, a);
      if (!entries) return a;
      const present = names(entries);
      if (present.has('.metadata')) return { ...(await assessDcp(view, e.path, entries)), variant: 'dcp' };
      if (present.has('model.safetensors.index.json')) {
        a.marker = true;
        a.variant = 'hf';
        await checkWeights(view, e.path, entries, a.problems);
        return a;
      }
      a.problems.push(
        present.has('.metadata.tmp')
          ? '.metadata.tmp present but no .metadata: the save is in progress or crashed'
          : 'neither .metadata nor model.safetensors.index.json: the save is in progress or crashed',
      );
      return a;
    },
  };
}

export const torchtitan: Layout = {
  format: 'torchtitan',
  async detect(view, root, entries) {
    if (dirs(entries, STEP_RE).length > 0) return true;
    const folder = entries.find((e) => e.name === 'checkpoint' && e.kind === 'dir');
    return folder ? (await view.list(folder.path).catch(() => [] as Entry[])).some((e) => e.kind === 'dir' && STEP_RE.test(e.name)) : false;
  },
  async discover(view, _root, entries) {
    let list = entries;
    if (dirs(entries, STEP_RE).length === 0) {
      const folder = entries.find((e) => e.name === 'checkpoint' && e.kind === 'dir');
      if (folder) list = await view.list(folder.path).catch(() => [] as Entry[]);
    }
    return dirs(list, STEP_RE).map((e) => torchtitanCandidate(view, e));
  },
  async single(view, parent, name) {
    const entries = await view.list(parent);
    const e = entries.find((x) => x.name === name) ?? { name, path: join(parent, name), kind: 'broken' as const, size: 0, symlink: false };
    return torchtitanCandidate(view, e);
  },
};

// ----- Gantry's own marker (issue 11): any directory holding GANTRY_COMPLETE is complete --------

export const MARKER_FILE = 'GANTRY_COMPLETE';
const TRAILING_DIGITS = /(\d+)$/;

function markerCandidate(view: FsView, e: Entry): Candidate {
  return {
    format: 'marker',
    path: e.path,
    name: e.name,
    step: stepFrom(TRAILING_DIGITS.exec(e.name)?.[1]),
    latest: false,
    async assess() {
      const blocked = unreachable(e);
      if (blocked) return blocked;
      const a: Assessment = { marker: false, problems: [], notes: [] };
      const entries = await listOr(view, e.path, a);
      if (!entries) return a;
      const m = entries.find((x) => x.name === MARKER_FILE);
      if (m && m.kind === 'file') a.marker = true;
      else a.problems.push(m ? `${MARKER_FILE} is not a regular file` : `no ${MARKER_FILE} file yet: the save is in progress or crashed`);
      return a;
    },
  };
}

/** Whether a directory holds the marker (auto mode claims only those no other layout did). */
export async function hasMarker(view: FsView, dir: string): Promise<boolean> {
  const entries = await view.list(dir).catch(() => [] as Entry[]);
  return entries.some((x) => x.name === MARKER_FILE && x.kind === 'file');
}

export const marker: Layout = {
  format: 'marker',
  async detect(view, _root, entries) {
    for (const e of dirs(entries, /./)) if (e.kind === 'dir' && (await hasMarker(view, e.path))) return true;
    return false;
  },
  async discover(view, _root, entries) {
    return dirs(entries, /^[^.]/).map((e) => markerCandidate(view, e));
  },
  async single(view, parent, name) {
    const entries = await view.list(parent);
    const e = entries.find((x) => x.name === name) ?? { name, path: join(parent, name), kind: 'broken' as const, size: 0, symlink: false };
    return markerCandidate(view, e);
  },
};

export const LAYOUTS: Record<CheckpointFormat, Layout> = { dcp, megatron, deepspeed, hf, torchtitan, marker };
