// Chooses the device backend from the agent's configuration and turns its inventory into
// the registration's GPU list.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { GpuDevice } from '@gantry/proto';
import type { AgentConfig } from './config.js';
import { detectBackend, parseScenario, SimKernelRing, simKernelDir, type DeviceBackend, type GpuInventoryEntry } from './device/index.js';

export async function createBackend(cfg: AgentConfig): Promise<DeviceBackend> {
  const backend = cfg.device.backend === 'auto' ? undefined : cfg.device.backend === 'sim' ? 'simulated' : 'nvidia-smi';
  return detectBackend({
    backend,
    ...(cfg.device.smiLoop ? { nvidiaSmi: { loopIntervalMs: cfg.telemetryIntervalMs } } : {}),
    sim: {
      model: { node: cfg.node, gpuCount: cfg.device.simGpus, gpuModel: cfg.device.simGpuModel, gpuMemoryMiB: cfg.device.simGpuMemoryMib },
      // Each simulated host differs from its peers, the same way on every start.
      seed: createHash('sha256').update(cfg.node).digest().readUInt32BE(0),
      scenario: cfg.device.simScenario ? parseScenario(readFileSync(cfg.device.simScenario, 'utf8')) : undefined,
      // The simulated kernel lives in the state directory and outlives the agent, like a real one.
      kernel: new SimKernelRing(simKernelDir(cfg.stateDir)),
    },
  });
}

export function toGpuDevices(inventory: readonly GpuInventoryEntry[]): GpuDevice[] {
  return inventory.map((g) => GpuDevice.create({ index: g.index, uuid: g.uuid, model: g.model, memoryMib: g.memoryMiB, pciBusId: g.pciBusId }));
}

export async function gpuDevices(backend: DeviceBackend): Promise<GpuDevice[]> {
  return toGpuDevices(await backend.fingerprint());
}
