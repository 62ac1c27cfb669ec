// Parsers for the human-readable nvidia-smi outputs that carry what --query-gpu lacks:
// the PCIe replay counter (`nvidia-smi -q -d PCIE`, "Replays Since Reset") and NVLink state
// and error counters (`nvidia-smi nvlink -s` / `nvlink -e`).
import { parseNumber } from '../counters.js';
import { normalizePciBusId } from '../pci.js';
import type { NvlinkStats } from './types.js';

export interface PcieQueryStats {
  pciBusId: string;
  replays?: number;
  replayRollovers?: number;
  txKBps?: number;
  rxKBps?: number;
}

/** `nvidia-smi -q [-d PCIE]`: one entry per "GPU 00000000:bb:dd.f" section. */
export function parseSmiQueryPcie(text: string): PcieQueryStats[] {
  const out: PcieQueryStats[] = [];
  let cur: PcieQueryStats | undefined;
  for (const line of text.split('\n')) {
    const gpu = /^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*$/.exec(line);
    if (gpu) {
      const bus = normalizePciBusId(gpu[1]);
      if (bus) out.push((cur = { pciBusId: bus }));
      continue;
    }
    if (!cur) continue;
    const kv = /^\s+([A-Za-z][A-Za-z ]*?)\s*:\s*(.*)$/.exec(line);
    if (!kv) continue;
    const value = kv[2]!.trim();
    switch (kv[1]) {
      case 'Replays Since Reset': setNum(cur, 'replays', value); break;
      case 'Replay Number Rollovers': setNum(cur, 'replayRollovers', value); break;
      case 'Tx Throughput': setNum(cur, 'txKBps', value.replace(/\s*KB\/s$/, '')); break;
      case 'Rx Throughput': setNum(cur, 'rxKBps', value.replace(/\s*KB\/s$/, '')); break;
      default: break;
    }
  }
  return out;
}

function setNum(o: PcieQueryStats, k: 'replays' | 'replayRollovers' | 'txKBps' | 'rxKBps', v: string): void {
  const n = parseNumber(v);
  if (n !== undefined) o[k] = n;
}

export interface NvlinkGpuStats {
  index: number;
  name?: string;
  uuid?: string;
  links: NvlinkStats[];
}

const GPU_HEADER = /^GPU (\d+): (.*?) \(UUID: (GPU-[^)]*)\)\s*$/;
const LINK = /^\s+Link (\d+): (.*)$/;

/**
 * `nvidia-smi nvlink -s` ("Link 3: 25 GB/s" or "Link 3: <inactive>") and `nvlink -e`
 * ("Link 3: Replay Errors: 0"): several lines may name the same link; they merge.
 */
export function parseNvlinkText(text: string): NvlinkGpuStats[] {
  const out: NvlinkGpuStats[] = [];
  let cur: NvlinkGpuStats | undefined;
  for (const line of text.split('\n')) {
    const g = GPU_HEADER.exec(line);
    if (g) {
      out.push((cur = { index: Number(g[1]), name: g[2]!, uuid: g[3]!, links: [] }));
      continue;
    }
    const l = LINK.exec(line);
    if (!l || !cur) continue;
    const n = Number(l[1]);
    let link = cur.links.find((x) => x.link === n);
    if (!link) cur.links.push((link = { link: n, active: false, errors: {} }));
    const rest = l[2]!.trim();
    const speed = /^([\d.]+) GB\/s$/.exec(rest);
    const err = /^([A-Za-z][A-Za-z ]*?)(?: Errors?)?(?: Count)?: (\d+)$/.exec(rest);
    if (speed) {
      link.speedGBps = Number(speed[1]);
      link.active = true;
    } else if (err) {
      link.errors[err[1]!.toLowerCase().replace(/\s+/g, '_')] = Number(err[2]);
    } else if (/inactive/i.test(rest)) {
      link.active = false;
    }
  }
  return out;
}
