// InfiniBand / RoCE port state and counters from /sys/class/infiniband. The parser works on
// a map of paths (relative to /sys/class/infiniband) to file contents, so the real reader,
// the simulator and test fixtures all feed it the same way.
import { parseCounter, parseNumber } from '../counters.js';

/** Relative path (e.g. `mlx5_0/ports/1/counters/port_rcv_data`) → file contents. */
export type SysfsTree = ReadonlyMap<string, string>;

export interface RdmaPortStats {
  device: string;
  port: number;
  linkLayer?: string;
  /** "ACTIVE", "DOWN", "INIT", ... and the numeric code before it. */
  state?: string;
  stateCode?: number;
  physState?: string;
  physStateCode?: number;
  rateText?: string;
  rateGbps?: number;
  hcaType?: string;
  firmwareVersion?: string;
  boardId?: string;
  /** counters/* (PMA port counters; port_*_data count 4-byte words). */
  counters: Record<string, number>;
  /** hw_counters/* (driver counters: out_of_sequence, roce_adp_retrans, ...). */
  hwCounters: Record<string, number>;
}

/** "400 Gb/sec (4X NDR)" → 400; "2.5 Gb/sec (1X SDR)" → 2.5. */
export function parseRate(text: string | undefined): number | undefined {
  const m = /^\s*([\d.]+)\s*Gb\/sec/.exec(text ?? '');
  return m ? parseNumber(m[1]) : undefined;
}

/** "4: ACTIVE" → { code: 4, name: 'ACTIVE' }; a bare word has no code. */
export function parseCodedState(text: string | undefined): { code?: number; name: string } | undefined {
  const t = text?.trim();
  if (!t) return undefined;
  const m = /^(\d+):\s*(.*)$/.exec(t);
  if (!m) return { name: t };
  return { code: Number(m[1]), name: m[2]!.trim() };
}

/** All ports in the tree, sorted by device then port. Never throws. */
export function parseInfinibandTree(tree: SysfsTree): RdmaPortStats[] {
  const ports = new Map<string, RdmaPortStats>();
  const devices = new Map<string, { hcaType?: string; firmwareVersion?: string; boardId?: string }>();
  for (const [path, raw] of tree) {
    const parts = path.split('/').filter((p) => p !== '');
    const device = parts[0];
    if (device === undefined) continue;
    const value = raw.trim();
    if (parts.length === 2) {
      const d = devices.get(device) ?? {};
      if (parts[1] === 'hca_type') d.hcaType = value;
      else if (parts[1] === 'fw_ver') d.firmwareVersion = value;
      else if (parts[1] === 'board_id') d.boardId = value;
      devices.set(device, d);
      continue;
    }
    if (parts[1] !== 'ports' || parts.length < 4) continue;
    const portNo = Number(parts[2]);
    if (!Number.isSafeInteger(portNo)) continue;
    const key = `${device}/${portNo}`;
    let p = ports.get(key);
    if (!p) ports.set(key, (p = { device, port: portNo, counters: {}, hwCounters: {} }));
    if (parts.length === 4) {
      switch (parts[3]) {
        case 'link_layer': if (value) p.linkLayer = value; break;
        case 'rate': {
          if (value) p.rateText = value;
          const r = parseRate(value);
          if (r !== undefined) p.rateGbps = r;
          break;
        }
        case 'state': {
          const s = parseCodedState(value);
          if (s) { p.state = s.name; if (s.code !== undefined) p.stateCode = s.code; }
          break;
        }
        case 'phys_state': {
          const s = parseCodedState(value);
          if (s) { p.physState = s.name; if (s.code !== undefined) p.physStateCode = s.code; }
          break;
        }
        default: break;
      }
    } else if (parts.length === 5 && (parts[3] === 'counters' || parts[3] === 'hw_counters')) {
      // Some drivers answer "N/A (no PMA)" for counters they cannot read: leave them out.
      const n = parseCounter(value);
      if (n === undefined) continue;
      (parts[3] === 'counters' ? p.counters : p.hwCounters)[parts[4]!] = n;
    }
  }
  const out = [...ports.values()];
  for (const p of out) {
    const d = devices.get(p.device);
    if (d?.hcaType) p.hcaType = d.hcaType;
    if (d?.firmwareVersion) p.firmwareVersion = d.firmwareVersion;
    if (d?.boardId) p.boardId = d.boardId;
  }
  return out.sort((a, b) => (a.device === b.device ? a.port - b.port : a.device < b.device ? -1 : 1));
}

/** `ethtool -S <if>`: "     name: value" lines; the header and non-numeric values are skipped. */
export function parseEthtoolStats(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_.\-[\]]+):\s*(\d+)\s*$/.exec(line);
    if (!m) continue;
    const n = parseCounter(m[2]!);
    if (n !== undefined) out[m[1]!] = n;
  }
  return out;
}
