// A GPU that disappears from the inventory: what nvidia-smi prints for it, the periodic
// fingerprint that notices, and its setting.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { GPU_INVENTORY_FIELDS, parseGpuInventoryCsv } from '../src/collectors/gpu/query-csv.js';
import { loadAgentConfig } from '../src/config.js';
import { schedulerKeyEnv } from './helpers/command-keys.js';
import { NvidiaSmiBackend } from '../src/device/nvidia-smi.js';
import { SimulatedBackend } from '../src/device/sim/sim-backend.js';
import type { DeviceBackend, GpuInventoryEntry } from '../src/device/types.js';
import { describeInventoryChange, diffInventory, InventoryWatch, type InventoryChange } from '../src/inventory-watch.js';

const log = pino({ level: 'silent' });
const gpu = (index: number, uuid = `GPU-${index}`): GpuInventoryEntry => ({ index, uuid, model: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, pciBusId: `00000000:${(0x18 + index).toString(16)}:00.0` });

describe('the inventory nvidia-smi reports', () => {
  it('leaves out a GPU that answers "[GPU is lost]" or that nvidia-smi cannot reach', () => {
    const text = [
      '0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559, 00000000:18:00.0',
      '1, GPU-bbbbbbbb-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, [GPU is lost], 00000000:2A:00.0',
      'Unable to determine the device handle for GPU 00000000:3A:00.0: Unknown Error',
      '3, GPU-dddddddd-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559, 00000000:5D:00.0',
    ].join('\n');
    expect(parseGpuInventoryCsv(text).map((g) => [g.index, g.pciBusId])).toEqual([[0, '00000000:18:00.0'], [3, '00000000:5d:00.0']]);
  });

  it('nvidia-smi exiting non-zero because one GPU is gone is an inventory without it; a hang or other failure is an error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-smi-lost-'));
    const lost = join(dir, 'nvidia-smi');
    writeFileSync(lost, `#!/bin/sh
echo '0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559, 00000000:18:00.0'
echo 'Unable to determine the device handle for GPU 00000000:2A:00.0: GPU is lost.  Reboot the system to recover this GPU'
exit 15
`);
    chmodSync(lost, 0o755);
    expect((await new NvidiaSmiBackend({ binary: lost }).fingerprint()).map((g) => g.index)).toEqual([0]);
    const broken = join(dir, 'broken-smi');
    writeFileSync(broken, "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 9\n");
    chmodSync(broken, 0o755);
    await expect(new NvidiaSmiBackend({ binary: broken }).fingerprint()).rejects.toMatchObject({ name: 'NvidiaSmiError' });
  });

  it('the simulator goes through the same parser: an Xid 79 takes the GPU out', async () => {
    const sim = new SimulatedBackend({ seed: 3 });
    expect(await sim.fingerprint()).toHaveLength(8);
    sim.inject({ fault: 'xid', gpu: 3, params: { xid: 79 } });
    expect((await sim.fingerprint()).map((g) => g.index)).toEqual([0, 1, 2, 4, 5, 6, 7]);
    expect(parseGpuInventoryCsv(sim.fingerprintCsv(GPU_INVENTORY_FIELDS))).toHaveLength(8); // the query shape itself is unchanged
    // gpu-lost: off the bus without a kernel log record.
    sim.inject({ fault: 'gpu-lost', gpu: 0 });
    expect((await sim.fingerprint()).map((g) => g.index)).toEqual([1, 2, 4, 5, 6, 7]);
    expect(sim.drainKernelLog()).toHaveLength(1); // only the Xid 79
  });
});

describe('periodic fingerprint', () => {
  it('diffs by index and UUID and says which GPU went', () => {
    const d = diffInventory([gpu(0), gpu(1), gpu(2)], [gpu(0), gpu(2, 'GPU-swapped')]);
    expect(d.gone.map((g) => g.uuid)).toEqual(['GPU-1', 'GPU-2']);
    expect(d.added.map((g) => g.uuid)).toEqual(['GPU-swapped']);
    expect(describeInventoryChange({ gone: [gpu(3, 'GPU-8f2c')], added: [] })).toEqual(['GPU 3 (GPU-8f2c, 00000000:1b:00.0) gone from the inventory']);
  });

  it('acts once per change, keeps the last inventory when the query fails, and runs one query at a time', async () => {
    const answers: Array<GpuInventoryEntry[] | Error> = [[gpu(0), gpu(1)], new Error('nvidia-smi timed out'), [gpu(0)], [gpu(0)]];
    let calls = 0;
    const backend = { fingerprint: async () => { calls++; const a = answers.shift()!; if (a instanceof Error) throw a; return a; } } as unknown as DeviceBackend;
    const changes: InventoryChange[] = [];
    const w = new InventoryWatch(backend, [gpu(0), gpu(1)], 60_000, (c) => { changes.push(c); }, log);
    expect(await w.check()).toBeUndefined();
    expect(await w.check()).toBeUndefined(); // failed: nothing changes
    expect(w.inventory).toHaveLength(2);
    const [a, b] = [w.check(), w.check()];
    expect(a).toBe(b);
    expect((await a)!.gone.map((g) => g.index)).toEqual([1]);
    expect(await w.check()).toBeUndefined();
    expect(changes.map((c) => c.inventory.map((g) => g.index))).toEqual([[0]]);
    expect(calls).toBe(4);
  });

  it('INVENTORY_INTERVAL_MS is validated, 30 s by default', () => {
    const env = { GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n0', GANTRY_STATE_DIR: '/tmp/x', ...schedulerKeyEnv() };
    expect(loadAgentConfig(env).inventoryIntervalMs).toBe(30_000);
    expect(loadAgentConfig({ ...env, INVENTORY_INTERVAL_MS: '2000' }).inventoryIntervalMs).toBe(2_000);
    expect(() => loadAgentConfig({ ...env, INVENTORY_INTERVAL_MS: '10' })).toThrow(/INVENTORY_INTERVAL_MS \(inventoryIntervalMs\)/);
  });
});
