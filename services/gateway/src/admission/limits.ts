// Size and count bounds on every string, list and map of a request, checked before any other
// validation, so no later rule ever quotes (or processes) an oversize value. A refusal names
// the field and quotes at most a short prefix of the value.
import { invalidArgument } from '@gantry/service-kit';
import { preview } from '@gantry/auth';

const KiB = 1024;

/** Bytes per string, by field name (the last path segment); other strings get DEFAULT_STRING_BYTES. */
export const FIELD_BYTES: Readonly<Record<string, number>> = {
  name: 128,
  tenant: 128,
  jobId: 128,
  idempotencyKey: 128,
  priorityClass: 32,
  storageTarget: 128,
  pageToken: 512,
  reason: KiB,
  workingDir: 4 * KiB,
  /** A user name or uid[:gid] is at most 33 characters (libs/proto user-ref.ts). */
  runAsUser: 64,
  dir: 4 * KiB,
  configJson: KiB * KiB,
  subject: 512,
  method: 128,
  beforeId: 64,
  gpuTypes: 128,
  excludeNodes: 128,
};

/** Command arguments and env values (the spec as a whole is further bounded by validate.ts). */
export const DEFAULT_STRING_BYTES = 128 * KiB;
/** Map fields whose keys are user data: their values are bounded by DEFAULT_STRING_BYTES. */
const MAP_FIELDS = new Set(['env', 'nodeSelector', 'labels']);
export const MAX_MAP_KEY_BYTES = 256;
export const MAX_MAP_ENTRIES = 512;
export const MAX_LIST_ITEMS = 4096;
const MAX_DEPTH = 16;
const MAX_PROBLEMS = 5;

const bytes = (s: string) => Buffer.byteLength(s);

/**
 * The problems of `value` (a decoded request), at most a few, each quoting only a prefix.
 * Every request goes through this several times (gateway guard and admission, the scheduler's
 * again), and nearly all pass: the path of a value is kept as segments and spelled out
 * (`spec.env.KEY`, `spec.command[2]`) only for a problem, not built as a string per field.
 */
export function boundsProblems(value: unknown): string[] {
  const problems: string[] = [];
  // A field name (spelled as in the .proto), a map key, or a list index, outermost first.
  const segs: (string | number)[] = [];
  const kinds: number[] = [];
  const path = (): string => {
    let out = '';
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!;
      if (kinds[i] === SEG_INDEX) out += `[${s}]`;
      else if (kinds[i] === SEG_KEY) out += `.${(s as string).length > 40 ? preview(s as string) : s}`;
      else out += out ? `.${snake(s as string)}` : snake(s as string);
    }
    return out;
  };
  const add = (msg: string) => { if (problems.length < MAX_PROBLEMS) problems.push(msg); };
  const walk = (v: unknown, field: string, depth: number): void => {
    if (problems.length >= MAX_PROBLEMS) return;
    if (depth > MAX_DEPTH) { add(`${path()} is nested too deeply`); return; }
    if (typeof v === 'string') {
      const max = FIELD_BYTES[field] ?? DEFAULT_STRING_BYTES;
      // A string of n UTF-16 units encodes to at most 3n bytes: count bytes only when that can exceed the bound.
      if (v.length > max || (v.length * 3 > max && bytes(v) > max)) add(`${path()} must be at most ${max} bytes, got ${bytes(v)} bytes starting ${preview(v)}`);
      return;
    }
    if (Array.isArray(v)) {
      if (v.length > MAX_LIST_ITEMS) { add(`${path()} must have at most ${MAX_LIST_ITEMS} items, got ${v.length}`); return; }
      for (let i = 0; i < v.length; i++) {
        segs.push(i); kinds.push(SEG_INDEX);
        walk(v[i], field, depth + 1);
        segs.pop(); kinds.pop();
      }
      return;
    }
    if (v === null || typeof v !== 'object' || v instanceof Date || v instanceof Uint8Array) return;
    const obj = v as Record<string, unknown>;
    const ks = Object.keys(obj);
    if (MAP_FIELDS.has(field)) {
      if (ks.length > MAX_MAP_ENTRIES) { add(`${path()} must have at most ${MAX_MAP_ENTRIES} entries, got ${ks.length}`); return; }
      for (const k of ks) {
        if (k.length * 3 > MAX_MAP_KEY_BYTES && bytes(k) > MAX_MAP_KEY_BYTES) { add(`${path()} key must be at most ${MAX_MAP_KEY_BYTES} bytes, got ${bytes(k)} bytes starting ${preview(k)}`); continue; }
        segs.push(k); kinds.push(SEG_KEY);
        walk(obj[k], '', depth + 1);
        segs.pop(); kinds.pop();
      }
      return;
    }
    for (const k of ks) {
      segs.push(k); kinds.push(SEG_FIELD);
      walk(obj[k], k, depth + 1);
      segs.pop(); kinds.pop();
    }
  };
  walk(value, '', 0);
  return problems;
}

const SEG_FIELD = 0;
const SEG_KEY = 1;
const SEG_INDEX = 2;

/** Throws INVALID_ARGUMENT listing the problems, if any. */
export function checkBounds(value: unknown): void {
  const problems = boundsProblems(value);
  if (problems.length > 0) throw invalidArgument(problems.join('; '));
}

/** Field names as in the .proto (spec.working_dir), as the other validation messages spell them. */
function snake(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
