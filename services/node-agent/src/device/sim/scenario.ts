// Fault scenarios for the simulated host: a list of `{at, fault, gpu?, mount?, device?,
// duration?, params}` entries, written as JSON or as the small YAML subset below.
//
//   - at: 60            # seconds after the simulation starts
//     fault: xid
//     gpu: 3
//     params: {xid: 79}
//   - {at: 120, fault: nfs-stall, mount: /mnt/datasets, duration: 90}

// `gpu-lost`: the GPU falls off the bus with no kernel log record the agent can read (the
// record was overwritten, or the log is unreadable): only the inventory shows it.
export type FaultKind =
  | 'xid' | 'ecc-storm' | 'thermal' | 'pcie-replay' | 'nfs-stall' | 'link-flap' | 'link-errors' | 'straggler' | 'gpu-lost';

export const FAULT_KINDS: readonly FaultKind[] = [
  'xid', 'ecc-storm', 'thermal', 'pcie-replay', 'nfs-stall', 'link-flap', 'link-errors', 'straggler', 'gpu-lost',
];

export interface Fault {
  fault: FaultKind;
  gpu?: number;
  /** Mountpoint. */
  mount?: string;
  /** RDMA device (mlx5_0); `port` defaults to 1. */
  device?: string;
  port?: number;
  /** Seconds; faults without one are instantaneous or last until the end. */
  duration?: number;
  params?: Record<string, number | string | boolean>;
}

export interface ScheduledFault extends Fault {
  at: number;
}

export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
}

function validate(raw: unknown, i: number): ScheduledFault {
  if (typeof raw !== 'object' || raw === null) throw new ScenarioError(`entry ${i}: not an object`);
  const r = raw as Record<string, unknown>;
  const at = Number(r['at'] ?? 0);
  if (!Number.isFinite(at) || at < 0) throw new ScenarioError(`entry ${i}: bad at`);
  const fault = String(r['fault']);
  if (!FAULT_KINDS.includes(fault as FaultKind)) throw new ScenarioError(`entry ${i}: unknown fault ${fault}`);
  const out: ScheduledFault = { at, fault: fault as FaultKind };
  const num = (k: 'gpu' | 'duration' | 'port'): void => {
    if (r[k] === undefined) return;
    const n = Number(r[k]);
    if (!Number.isFinite(n) || n < 0) throw new ScenarioError(`entry ${i}: bad ${k}`);
    out[k] = n;
  };
  num('gpu');
  num('duration');
  num('port');
  if (r['mount'] !== undefined) out.mount = String(r['mount']);
  if (r['device'] !== undefined) out.device = String(r['device']);
  if (r['params'] !== undefined) {
    if (typeof r['params'] !== 'object' || r['params'] === null) throw new ScenarioError(`entry ${i}: params must be a map`);
    out.params = r['params'] as Record<string, number | string | boolean>;
  }
  return out;
}

/** JSON (an array, or {faults: [...]}) or YAML subset text → validated, sorted by time. */
export function parseScenario(text: string): ScheduledFault[] {
  const t = text.trim();
  let raw: unknown;
  if (t.startsWith('[') || t.startsWith('{')) raw = JSON.parse(t);
  else raw = parseYamlList(t);
  const list = Array.isArray(raw) ? raw : (raw as { faults?: unknown })?.faults;
  if (!Array.isArray(list)) throw new ScenarioError('scenario must be a list of faults');
  return list.map(validate).sort((a, b) => a.at - b.at);
}

function scalar(v: string): number | string | boolean {
  const s = v.trim().replace(/\s+#.*$/, '');
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  if (s === 'true' || s === 'false') return s === 'true';
  return s.replace(/^(['"])(.*)\1$/, '$2');
}

function flowMap(v: string): Record<string, number | string | boolean> {
  const body = v.trim().replace(/^\{|\}$/g, '');
  const out: Record<string, number | string | boolean> = {};
  for (const part of body.split(',')) {
    const i = part.indexOf(':');
    if (i < 0) continue;
    out[part.slice(0, i).trim()] = scalar(part.slice(i + 1));
  }
  return out;
}

/**
 * The YAML a scenario needs and no more: a top-level block list (optionally under
 * `faults:`) whose items are `key: value` lines or one flow map, with `params` as a flow
 * map or an indented block of `key: value`. Anything else is a ScenarioError.
 */
export function parseYamlList(text: string): unknown[] {
  const items: Record<string, unknown>[] = [];
  let cur: Record<string, unknown> | undefined;
  let nested: Record<string, unknown> | undefined;
  let itemIndent = -1;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/\s+#.*$/, '').replace(/^#.*$/, '');
    if (line.trim() === '' || line.trim() === '---' || /^faults:\s*$/.test(line.trim())) continue;
    const indent = line.length - line.trimStart().length;
    let body = line.trim();
    if (body.startsWith('- ')) {
      cur = {};
      items.push(cur);
      nested = undefined;
      itemIndent = indent + 2;
      body = body.slice(2).trim();
      if (body.startsWith('{')) {
        Object.assign(cur, flowMap(body));
        continue;
      }
    } else if (!cur) {
      throw new ScenarioError(`unexpected line: ${rawLine}`);
    }
    const i = body.indexOf(':');
    if (i < 0) throw new ScenarioError(`expected key: value, got: ${rawLine}`);
    const key = body.slice(0, i).trim();
    const value = body.slice(i + 1).trim();
    if (nested && indent > itemIndent) {
      nested[key] = scalar(value);
    } else if (value === '') {
      nested = {};
      cur![key] = nested;
    } else {
      nested = undefined;
      cur![key] = value.startsWith('{') ? flowMap(value) : scalar(value);
    }
  }
  return items;
}
