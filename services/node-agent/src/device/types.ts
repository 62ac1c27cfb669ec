// The seam between the agent and the host: a DeviceBackend hands over the RAW text of each
// telemetry source (what nvidia-smi prints, what /proc and /sys contain, kernel log lines),
// never parsed values. The real backend and the simulator therefore go through the same
// parsers, and a parser bug shows up in simulation too.
import type { GpuInventoryEntry } from '../collectors/pci.js';
import type { SysfsTree } from '../collectors/rdma/sysfs.js';

export type { GpuInventoryEntry } from '../collectors/pci.js';
export type { SysfsTree } from '../collectors/rdma/sysfs.js';

export interface GpuMetricsText {
  /** `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` output. */
  csv: string;
  /** The fields that query used, in order (the CSV has no header). */
  fields: readonly string[];
  /** `nvidia-smi -q -d PCIE` output, for the PCIe replay counter. */
  pcieQuery?: string;
  /** `nvidia-smi nvlink -s` (and/or `-e`) output. */
  nvlink?: string;
}

export interface RdmaReadings {
  /** /sys/class/infiniband as relative path → contents. */
  sysfs: SysfsTree;
  /** `ethtool -S` output by network interface. */
  ethtool: Readonly<Record<string, string>>;
}

export interface DeviceBackend {
  /** 'nvidia-smi' or 'simulated'; reported at registration (Node.device_backend). */
  readonly kind: string;
  /** GPU inventory (index, uuid, model, memory, bus id). */
  fingerprint(): Promise<GpuInventoryEntry[]>;
  readGpuMetricsText(): Promise<GpuMetricsText>;
  readMountstatsText(): Promise<string>;
  readRdma(): Promise<RdmaReadings>;
  /** New kernel log lines as they arrive, until the signal aborts. */
  kernelLog(signal?: AbortSignal): AsyncIterable<string>;
}
