// The host's GPU inventory, from the device backend: nvidia-smi on a GPU host, or the
// simulated model (deterministic UUIDs and PCI bus ids per node) elsewhere.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { GpuDevice } from '@gantry/proto';
import type { AgentConfig } from './config.js';

const NVIDIA_SMI_PATHS = ['/usr/bin/nvidia-smi', '/usr/local/nvidia/bin/nvidia-smi', '/usr/local/bin/nvidia-smi'];

export function findNvidiaSmi(): string | undefined {
  return NVIDIA_SMI_PATHS.find((p) => existsSync(p));
}

export function chooseBackend(cfg: AgentConfig): 'sim' | 'nvidia-smi' {
  if (cfg.device.backend !== 'auto') return cfg.device.backend;
  return findNvidiaSmi() ? 'nvidia-smi' : 'sim';
}

export function simulatedGpus(cfg: AgentConfig): GpuDevice[] {
  return Array.from({ length: cfg.device.simGpus }, (_, index) => {
    const h = createHash('sha256').update(`${cfg.node}/${index}`).digest('hex');
    const uuid = `GPU-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
    // Bus ids as on an 8-GPU HGX board.
    const bus = ['18', '2a', '3a', '5d', '9a', 'ab', 'ba', 'db'][index % 8] ?? '18';
    return GpuDevice.create({ index, uuid, model: cfg.device.simGpuModel, memoryMib: cfg.device.simGpuMemoryMib, pciBusId: `00000000:${bus}:00.0` });
  });
}

/** Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv,noheader,nounits`. */
export function parseInventoryCsv(text: string): GpuDevice[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).flatMap((line) => {
    const [index, uuid, name, mem, bus] = line.split(',').map((f) => f.trim());
    if (index === undefined || !/^\d+$/.test(index)) return [];
    return [GpuDevice.create({ index: Number(index), uuid: uuid ?? '', model: name ?? '', memoryMib: Number(mem) || 0, pciBusId: bus ?? '' })];
  });
}

export function nvidiaSmiGpus(): GpuDevice[] {
  const bin = findNvidiaSmi() ?? 'nvidia-smi';
  const out = execFileSync(bin, ['--query-gpu=index,uuid,name,memory.total,pci.bus_id', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 15_000 });
  return parseInventoryCsv(out);
}

export function fingerprintGpus(cfg: AgentConfig): { backend: string; gpus: GpuDevice[] } {
  const backend = chooseBackend(cfg);
  return { backend, gpus: backend === 'nvidia-smi' ? nvidiaSmiGpus() : simulatedGpus(cfg) };
}
