// The real DeviceBackend: nvidia-smi for GPUs, /proc/self/mountstats for NFS,
// /sys/class/infiniband (+ ethtool -S for RoCE netdevs) for the fabric, and /dev/kmsg (or
// the journal) for the kernel log. detectBackend() picks it when nvidia-smi exists and
// falls back to the simulator otherwise. Each cycle reads `--query-gpu` and the PCIe error
// counters (`nvidia-smi pci -gErrCnt`: driver 580 has no `-q -d PCIE`). With `loopIntervalMs`,
// the `--query-gpu` readings come from a long-running `nvidia-smi ... -lms` loop instead of a
// fork per cycle (see smi-loop.ts and `pnpm bench:agent` for what each costs); `pci` has no
// loop option, so it forks every cycle either way.
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

const PCI_ERROR_COUNTERS = ['pci', '-gErrCnt'];

/** The PCIe error counters' text, or why there is none (reported, not swallowed: until a GPU host ran the agent, a query the driver refuses went unnoticed). */
function pcieText(r: PromiseSettledResult<string>): Pick<GpuMetricsText, 'pcieErrors' | 'pcieError'> {
  if (r.status === 'fulfilled') return { pcieErrors: r.value };
  const err = r.reason as Error;
  // A GPU off the bus: the others' counters were printed beside the line about it (as in fingerprint()).
  if (err instanceof NvidiaSmiError && !err.timedOut && GPU_UNREACHABLE.test(err.stderr)) return { pcieErrors: err.stderr };
  // NvidiaSmiError's message names the command; what nvidia-smi printed says why.
  const said = err instanceof NvidiaSmiError ? err.stderr.trim().split('\n')[0] : '';
  return { pcieError: `${err.message.split('\n')[0]}${said ? ` (${said})` : ''}` };
}

export interface NvidiaSmiBackendOptions {
  binary: string;
  timeoutMs?: number;
  /** Also run `nvidia-smi nvlink -s` each cycle (one more fork; off by default). */
  nvlink?: boolean;
  /**
   * Read GPU metrics from a long-running `nvidia-smi --query-gpu ... -lms` loop at this
   * interval (the telemetry interval) instead of forking it every cycle. A reading is then up
   * to one interval old. Unset: a fork per query per cycle.
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
  private loop: SmiLoop | undefined;

  constructor(private readonly options: NvidiaSmiBackendOptions) {}

  /** The pid of the running nvidia-smi loop (none without loopIntervalMs). */
  loopPids(): number[] {
    return this.loop?.pid === undefined ? [] : [this.loop.pid];
  }

  /** Stops the nvidia-smi loop, if any. */
  close(): void {
    this.loop?.stop();
    this.loop = undefined;
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
    if (this.loop) {
      try {
        return await this.readFromLoop(this.loop);
      } catch {
        // The loop died or hung (a GPU lost, a driver restart): this cycle forks, which
        // reports the failure the usual way, and a later read starts the loop again.
      }
    }
    const text = await this.readByForks();
    const interval = this.options.loopIntervalMs;
    if (interval !== undefined && interval > 0 && !this.loop) {
      this.loop = new SmiLoop({ binary: this.options.binary, args: [`--query-gpu=${this.fields.join(',')}`, '--format=csv,noheader,nounits'], intervalMs: interval });
    }
    return text;
  }

  private async readFromLoop(loop: SmiLoop): Promise<GpuMetricsText> {
    // The loop's reading first (at once, unless it is stale): when the loop has failed the cycle
    // forks everything, and a `pci` fork started beside it would be wasted.
    const csv = await loop.read(this.options.timeoutMs ?? 10_000);
    return { csv, fields: this.fields, ...(await this.sideReadings()) };
  }

  private async readByForks(): Promise<GpuMetricsText> {
    const opts = { binary: this.options.binary, timeoutMs: this.options.timeoutMs ?? 10_000 };
    const [query, side] = await Promise.all([queryGpuCsv(this.fields, opts), this.sideReadings()]);
    // Remember which fields this driver accepts, so the retries happen once.
    this.fields = query.fields;
    return { csv: query.text, fields: query.fields, ...side };
  }

  /** What forks every cycle either way: the PCIe error counters, and NVLink with `nvlink`. Never rejects. */
  private async sideReadings(): Promise<Pick<GpuMetricsText, 'pcieErrors' | 'pcieError' | 'nvlink'>> {
    const [pcie, nvlink] = await Promise.allSettled([
      this.smi(PCI_ERROR_COUNTERS),
      this.options.nvlink ? this.smi(['nvlink', '-s']) : Promise.resolve(undefined),
    ]);
    return { ...pcieText(pcie), ...(nvlink.status === 'fulfilled' && nvlink.value !== undefined ? { nvlink: nvlink.value } : {}) };
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
