// The real DeviceBackend: nvidia-smi for GPUs, /proc/self/mountstats for NFS,
// /sys/class/infiniband (+ ethtool -S for RoCE netdevs) for the fabric, and /dev/kmsg (or
// the journal) for the kernel log. detectBackend() picks it when nvidia-smi exists and
// falls back to the simulator otherwise. With `loopIntervalMs`, the GPU readings come from
// two long-running `nvidia-smi ... -lms` loops instead of two forks per cycle (see
// smi-loop.ts and `pnpm bench:agent` for what each costs).
import { readFile } from 'node:fs/promises';
import { uptime } from 'node:os';
import { parseGpuInventoryCsv, GPU_INVENTORY_FIELDS, GPU_QUERY_FIELDS } from '../collectors/gpu/query-csv.js';
import { findNvidiaSmi, NvidiaSmiError, queryGpuCsv, runNvidiaSmi } from '../collectors/gpu/reader.js';
import { readInfinibandSysfs, rdmaNetdevs, runEthtoolStats } from '../collectors/rdma/reader.js';
import { followKernelLog } from '../collectors/xid/reader.js';
import { SimulatedBackend, type SimOptions } from './sim/sim-backend.js';
import { SmiLoop } from './smi-loop.js';
import type { DeviceBackend, GpuInventoryEntry, GpuMetricsText, KernelBoot, KernelLogReadOptions, RdmaReadings } from './types.js';

const GPU_UNREACHABLE = /Unable to determine the device handle for GPU|GPU is lost|GPU requires reset/i;

export interface NvidiaSmiBackendOptions {
  binary: string;
  timeoutMs?: number;
  /** Also run `nvidia-smi nvlink -s` each cycle (one more fork; off by default). */
  nvlink?: boolean;
  /**
   * Read GPU metrics from long-running `nvidia-smi --query-gpu ... -lms` and `-q -d PCIE -lms`
   * loops at this interval (the telemetry interval) instead of forking both every cycle.
   * A reading is then up to one interval old. Unset: a fork per query per cycle.
   */
  loopIntervalMs?: number;
  mountstatsPath?: string;
  infinibandRoot?: string;
  kmsgPath?: string;
  bootIdPath?: string;
}

export class NvidiaSmiBackend implements DeviceBackend {
  readonly kind = 'nvidia-smi';
  private fields: readonly string[] = GPU_QUERY_FIELDS;
  /** Started after the first one-shot query has settled which fields this driver accepts. */
  private loops: { query: SmiLoop; pcie: SmiLoop } | undefined;

  constructor(private readonly options: NvidiaSmiBackendOptions) {}

  /** The pids of the running nvidia-smi loops (none without loopIntervalMs). */
  loopPids(): number[] {
    return [this.loops?.query.pid, this.loops?.pcie.pid].filter((p): p is number => p !== undefined);
  }

  /** Stops the nvidia-smi loops, if any. */
  close(): void {
    this.loops?.query.stop();
    this.loops?.pcie.stop();
    this.loops = undefined;
  }

  private smi(args: string[]): Promise<string> {
    return runNvidiaSmi(args, { binary: this.options.binary, timeoutMs: this.options.timeoutMs ?? 10_000 });
  }

  async fingerprint(): Promise<GpuInventoryEntry[]> {
    let text: string;
    try {
      text = await this.smi([`--query-gpu=${GPU_INVENTORY_FIELDS.join(',')}`, '--format=csv,noheader,nounits']);
    } catch (err) {
      // With a GPU fallen off the bus nvidia-smi prints the others, a line saying it cannot
      // reach that one, and exits non-zero: that is an inventory without it, not a failure.
      if (!(err instanceof NvidiaSmiError) || err.timedOut || !GPU_UNREACHABLE.test(err.stderr)) throw err;
      text = err.stderr;
    }
    return parseGpuInventoryCsv(text, GPU_INVENTORY_FIELDS);
  }

  async readGpuMetricsText(): Promise<GpuMetricsText> {
    if (this.loops) {
      try {
        return await this.readFromLoops(this.loops);
      } catch {
        // The loop died or hung (a GPU lost, a driver restart): this cycle forks, which
        // reports the failure the usual way, and a later read starts the loop again.
      }
    }
    const text = await this.readByForks();
    const interval = this.options.loopIntervalMs;
    if (interval !== undefined && interval > 0 && !this.loops) {
      const binary = this.options.binary;
      this.loops = {
        query: new SmiLoop({ binary, args: [`--query-gpu=${this.fields.join(',')}`, '--format=csv,noheader,nounits'], intervalMs: interval }),
        pcie: new SmiLoop({ binary, args: ['-q', '-d', 'PCIE'], intervalMs: interval }),
      };
    }
    return text;
  }

  private async readFromLoops(loops: { query: SmiLoop; pcie: SmiLoop }): Promise<GpuMetricsText> {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    const [csv, pcie, nvlink] = await Promise.allSettled([
      loops.query.read(timeoutMs),
      loops.pcie.read(timeoutMs),
      this.options.nvlink ? this.smi(['nvlink', '-s']) : Promise.resolve(undefined),
    ]);
    if (csv.status === 'rejected') throw csv.reason;
    return {
      csv: csv.value,
      fields: this.fields,
      ...(pcie.status === 'fulfilled' ? { pcieQuery: pcie.value } : {}),
      ...(nvlink.status === 'fulfilled' && nvlink.value !== undefined ? { nvlink: nvlink.value } : {}),
    };
  }

  private async readByForks(): Promise<GpuMetricsText> {
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

  kernelLog(signal?: AbortSignal, options: KernelLogReadOptions = {}): AsyncIterable<string> {
    return followKernelLog({ ...options, ...(signal ? { signal } : {}), ...(this.options.kmsgPath ? { kmsgPath: this.options.kmsgPath } : {}) });
  }

  async kernelBoot(): Promise<KernelBoot | undefined> {
    try {
      const id = (await readFile(this.options.bootIdPath ?? '/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      return id === '' ? undefined : { id, timeMs: Date.now() - uptime() * 1000 };
    } catch {
      return undefined;
    }
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
