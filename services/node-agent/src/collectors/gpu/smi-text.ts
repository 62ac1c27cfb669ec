// Parsers for the human-readable nvidia-smi outputs that carry what --query-gpu lacks: the
// PCIe error counters (`nvidia-smi pci -gErrCnt`, the replay counter among them) and NVLink
// state and error counters (`nvidia-smi nvlink -s` / `nvlink -e`).
import { parseNumber } from '../counters.js';
import type { NvlinkStats } from './types.js';

/** The `nvidia-smi pci -gErrCnt` counters the agent reports, per GPU (since the driver loaded). */
export interface PcieErrorCounters {
  index: number;
  uuid: string;
  /** REPLAY_COUNTER: TLPs the link layer had to send again. */
  replays?: number;
  /** L0_TO_RECOVERY_COUNTER: times the link left L0 to retrain (a flapping link climbs). */
  recoveries?: number;
}

const PCI_COUNTERS: Record<string, keyof Omit<PcieErrorCounters, 'index' | 'uuid'>> = {
  REPLAY_COUNTER: 'replays',
  L0_TO_RECOVERY_COUNTER: 'recoveries',
};

/**
 * `nvidia-smi pci -gErrCnt`: a "GPU 0: NVIDIA H200 (UUID: GPU-...)" header per GPU, then
 * "    REPLAY_COUNTER:          0" lines (the other counters and per-lane errors are not kept yet). Driver 580 has no
 * `-q -d PCIE` (it prints "Failed to parse --display/-d flags"); this is the cheap way to the
 * replay counter (29 ms against 118 ms for a whole `-q` on an H200).
 */
export function parsePciErrorCounters(text: string): PcieErrorCounters[] {
  const out: PcieErrorCounters[] = [];
  let cur: PcieErrorCounters | undefined;
  for (const line of text.split('\n')) {
    const gpu = GPU_HEADER.exec(line);
    if (gpu) {
      out.push((cur = { index: Number(gpu[1]), uuid: gpu[3]! }));
      continue;
    }
    const kv = /^\s+([A-Z][A-Z0-9_]*):\s*(\S*)\s*$/.exec(line);
    const key = kv && PCI_COUNTERS[kv[1]!];
    if (!cur || !key) continue;
    const n = parseNumber(kv[2]!);
    if (n !== undefined) cur[key] = n;
  }
  return out;
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
