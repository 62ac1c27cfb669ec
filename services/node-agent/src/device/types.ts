// The seam between the agent and the host: a DeviceBackend hands over the RAW text of each
// telemetry source (what nvidia-smi prints, what /proc and /sys contain, kernel log lines),
// never parsed values. The real backend and the simulator therefore go through the same
// parsers, and a parser bug shows up in simulation too.
import type { GpuInventoryEntry } from '../collectors/pci.js';
import type { SysfsTree } from '../collectors/rdma/sysfs.js';
import type { KernelLogFollowOptions } from '../collectors/xid/reader.js';

export type { GpuInventoryEntry } from '../collectors/pci.js';
export type { SysfsTree } from '../collectors/rdma/sysfs.js';

export interface GpuMetricsText {
  /** `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` output. */
  csv: string;
  /** The fields that query used, in order (the CSV has no header). */
  fields: readonly string[];
  /** `nvidia-smi pci -gErrCnt` output: PCIe error counters (replays, link recoveries, ...). */
  pcieErrors?: string;
  /** Why the PCIe error counters could not be read (the collector reports it; the rest stands). */
  pcieError?: string;
  /** `nvidia-smi nvlink -s` (and/or `-e`) output. */
  nvlink?: string;
}

export interface RdmaReadings {
  /** /sys/class/infiniband as relative path → contents. */
  sysfs: SysfsTree;
  /** `ethtool -S` output by network interface. */
  ethtool: Readonly<Record<string, string>>;
}

/** The boot the kernel log belongs to: /dev/kmsg sequence numbers restart at every boot. */
export interface KernelBoot {
  /** /proc/sys/kernel/random/boot_id (or the simulated host's). */
  id: string;
  /** Wall-clock ms of the boot: a kmsg record's time is this plus its microseconds since boot. */
  timeMs: number;
}

/** Where to resume the kernel log (see collectors/xid/reader.ts). */
export type KernelLogReadOptions = Pick<KernelLogFollowOptions, 'afterSeq' | 'onMissed'>;

export interface DeviceBackend {
  /** 'nvidia-smi' or 'simulated'; reported at registration (Node.device_backend). */
  readonly kind: string;
  /** GPU inventory (index, uuid, model, memory, bus id). */
  fingerprint(): Promise<GpuInventoryEntry[]>;
  readGpuMetricsText(): Promise<GpuMetricsText>;
  readMountstatsText(): Promise<string>;
  readRdma(): Promise<RdmaReadings>;
  /**
   * Kernel log lines as they arrive, until the signal aborts: only new ones, or with
   * `afterSeq` the backlog after that /dev/kmsg record first.
   */
  kernelLog(signal?: AbortSignal, options?: KernelLogReadOptions): AsyncIterable<string>;
  /** The current boot, or undefined when unknown (then the backlog cannot be resumed and is skipped). */
  kernelBoot(): Promise<KernelBoot | undefined>;
  /** Stops what the backend runs in the background (the nvidia-smi loop); the agent calls it at shutdown. */
  close?(): void;
}
