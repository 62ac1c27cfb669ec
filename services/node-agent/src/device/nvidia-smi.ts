// The real DeviceBackend: nvidia-smi for GPUs, /proc/self/mountstats for NFS,
// /sys/class/infiniband (+ ethtool -S for RoCE netdevs) for the fabric, and /dev/kmsg (or
// the journal) for the kernel log. detectBackend() picks it when nvidia-smi exists and
// falls back to the simulator otherwise.
import { readFile } from 'node:fs/promises';
import { parseGpuQueryCsv, GPU_INVENTORY_FIELDS, GPU_QUERY_FIELDS } from '../collectors/gpu/query-csv.js';
import { findNvidiaSmi, queryGpuCsv, runNvidiaSmi } from '../collectors/gpu/reader.js';
import { readInfinibandSysfs, rdmaNetdevs, runEthtoolStats } from '../collectors/rdma/reader.js';
import { followKernelLog } from '../collectors/xid/reader.js';
import { SimulatedBackend, type SimOptions } from './sim/sim-backend.js';
import type { DeviceBackend, GpuInventoryEntry, GpuMetricsText, RdmaReadings } from './types.js';

export interface NvidiaSmiBackendOptions {
  binary: string;
  timeoutMs?: number;
  /** Also run `nvidia-smi nvlink -s` each cycle (one more fork; off by default). */
  nvlink?: boolean;
  mountstatsPath?: string;
  infinibandRoot?: string;
  kmsgPath?: string;
}

export class NvidiaSmiBackend implements DeviceBackend {
  readonly kind = 'nvidia-smi';
  private fields: readonly string[] = GPU_QUERY_FIELDS;

  constructor(private readonly options: NvidiaSmiBackendOptions) {}

  private smi(args: string[]): Promise<string> {
    return runNvidiaSmi(args, { binary: this.options.binary, timeoutMs: this.options.timeoutMs ?? 10_000 });
  }

  async fingerprint(): Promise<GpuInventoryEntry[]> {
    const text = await this.smi([`--query-gpu=${GPU_INVENTORY_FIELDS.join(',')}`, '--format=csv,noheader,nounits']);
    return parseGpuQueryCsv(text, GPU_INVENTORY_FIELDS).flatMap((g) =>
      g.index === undefined || g.uuid === undefined
        ? []
        : [{ index: g.index, uuid: g.uuid, model: g.name ?? '', memoryMiB: g.memoryTotalMiB ?? 0, pciBusId: g.pciBusId ?? '' }]);
  }

  async readGpuMetricsText(): Promise<GpuMetricsText> {
    const opts = { binary: this.options.binary, timeoutMs: this.options.timeoutMs ?? 10_000 };
    const [query, pcie, nvlink] = await Promise.allSettled([
      queryGpuCsv(this.fields, opts),
      this.smi(['-q', '-d', 'PCIE']),
      this.options.nvlink ? this.smi(['nvlink', '-s']) : Promise.resolve(undefined),
    ]);
    if (query.status === 'rejected') throw query.reason;
    // Remember which fields this driver accepts, so the retries happen once.
    this.fields = query.value.fields;
    return {
      csv: query.value.text,
      fields: query.value.fields,
      ...(pcie.status === 'fulfilled' ? { pcieQuery: pcie.value } : {}),
      ...(nvlink.status === 'fulfilled' && nvlink.value !== undefined ? { nvlink: nvlink.value } : {}),
    };
  }

  async readMountstatsText(): Promise<string> {
    return readFile(this.options.mountstatsPath ?? '/proc/self/mountstats', 'utf8');
  }

  async readRdma(): Promise<RdmaReadings> {
    const root = this.options.infinibandRoot ?? '/sys/class/infiniband';
    const [sysfs, netdevs] = await Promise.all([readInfinibandSysfs(root), rdmaNetdevs(root)]);
    const ethtool: Record<string, string> = {};
    await Promise.all(netdevs.map(async (iface) => {
      try {
        ethtool[iface] = await runEthtoolStats(iface);
      } catch {
        // No ethtool, or an IPoIB interface without stats: the sysfs counters remain.
      }
    }));
    return { sysfs, ethtool };
  }

  kernelLog(signal?: AbortSignal): AsyncIterable<string> {
    return followKernelLog({ ...(signal ? { signal } : {}), ...(this.options.kmsgPath ? { kmsgPath: this.options.kmsgPath } : {}) });
  }
}

export interface DetectOptions {
  /** Force a backend; otherwise nvidia-smi when found, else simulated. */
  backend?: 'nvidia-smi' | 'simulated';
  sim?: SimOptions;
  nvidiaSmi?: Omit<NvidiaSmiBackendOptions, 'binary'>;
}

/** nvidia-smi on PATH or in /usr/local/nvidia/bin (GPU Operator / container installs). */
export async function detectBackend(options: DetectOptions = {}): Promise<DeviceBackend> {
  if (options.backend !== 'simulated') {
    const binary = await findNvidiaSmi(['/usr/local/nvidia/bin']);
    if (binary) return new NvidiaSmiBackend({ ...options.nvidiaSmi, binary });
    if (options.backend === 'nvidia-smi') throw new Error('nvidia-smi not found (PATH, /usr/local/nvidia/bin)');
  }
  return new SimulatedBackend({ clock: 'wall', ...options.sim });
}
