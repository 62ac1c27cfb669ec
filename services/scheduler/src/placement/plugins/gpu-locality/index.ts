// Which GPUs of a node a job gets. GPUs on one 8-GPU board are linked in halves and pairs
// (NVLink/NVSwitch islands, PCIe switches), so jobs sharing a node should each stay inside
// the smallest aligned block that holds them: a buddy allocator over power-of-two blocks.
// Among blocks that fit, take the one with the fewest free GPUs, and break ties by the
// fewest free GPUs in the enclosing blocks, so the emptier half stays whole for a larger job.
// This is the GPU-assignment stage of placement, after the nodes are chosen.
import { maskOf, popcount } from '../../cluster-state.js';

function blockMask(start: number, size: number, gpuCount: number): number {
  const end = Math.min(start + size, gpuCount, 32);
  let m = 0;
  for (let g = start; g < end; g++) m |= 1 << g;
  return m >>> 0;
}

/**
 * How many GPU index positions the node spans: its GPU count, or more when a GPU has left the
 * inventory and the remaining indices have a hole (GPU 3 of 0-7 gone: 7 GPUs, indices up to 7).
 */
function indexSpan(freeMask: number, gpuCount: number): number {
  return Math.min(Math.max(gpuCount, 32 - Math.clz32(freeMask)), 32);
}

/** Picks `want` GPU indices from `freeMask` on a node with `gpuCount` GPUs (ascending). */
export function pickGpus(freeMask: number, gpuCount: number, want: number): number[] {
  if (popcount(freeMask) < want) throw new RangeError(`node has ${popcount(freeMask)} free GPUs, ${want} wanted`);
  const count = indexSpan(freeMask, gpuCount);
  let top = 1;
  while (top < count) top *= 2;
  let size = 1;
  while (size < want) size *= 2;
  for (; size <= top; size *= 2) {
    let best = -1;
    let bestKey: number[] = [];
    for (let start = 0; start < count; start += size) {
      const inBlock = popcount(freeMask & blockMask(start, size, count));
      if (inBlock < want) continue;
      // Free GPUs in this block and each enclosing block, smallest first.
      const key = [inBlock];
      for (let outer = size * 2; outer <= top; outer *= 2) {
        key.push(popcount(freeMask & blockMask(Math.floor(start / outer) * outer, outer, count)));
      }
      if (best === -1 || lexLess(key, bestKey)) {
        best = start;
        bestKey = key;
      }
    }
    if (best !== -1) return chooseInBlock(freeMask & blockMask(best, size, count), want);
  }
  // Unreachable when popcount(freeMask) >= want: the top block holds every GPU.
  throw new Error('no block holds the request');
}

/**
 * The GPUs a rank gets: `prefer` (the indices a kept rank had before) when they are all
 * still free and as many as wanted, so a restarted rank finds its devices where it left
 * them; otherwise the buddy allocator's choice.
 */
export function assignGpus(freeMask: number, gpuCount: number, want: number, prefer?: readonly number[]): number[] {
  if (prefer && prefer.length === want && new Set(prefer).size === want && prefer.every((g) => g >= 0 && g < indexSpan(freeMask, gpuCount))) {
    const mask = maskOf(prefer);
    if ((freeMask & mask) >>> 0 === mask) return [...prefer].sort((a, b) => a - b);
  }
  return pickGpus(freeMask, gpuCount, want);
}

/** Prefer a contiguous run (fewest hops on a ring or PCIe tree); else the lowest indices. */
function chooseInBlock(mask: number, want: number): number[] {
  const free: number[] = [];
  for (let g = 0; g < 32; g++) if (mask & (1 << g)) free.push(g);
  for (let s = 0; s + want <= free.length; s++) {
    if (free[s + want - 1]! - free[s]! === want - 1) return free.slice(s, s + want);
  }
  return free.slice(0, want);
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]!;
  }
  return false;
}
