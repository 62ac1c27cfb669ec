// The shape of a simulated host. Defaults describe a common training node: 8 x H100 SXM,
// four NFS mounts (datasets, checkpoints, home, scratch), one InfiniBand HCA and one RoCE
// NIC.

export interface SimMount {
  device: string;
  mountpoint: string;
  fstype: 'nfs' | 'nfs4';
  /** Role decides the load: checkpoints get write bursts, datasets steady reads. */
  role: 'datasets' | 'checkpoints' | 'home' | 'scratch';
}

export interface SimHca {
  name: string;
  linkLayer: 'InfiniBand' | 'Ethernet';
  rateText: string;
  /** Network interface for `ethtool -S` (RoCE NICs). */
  netdev?: string;
  hcaType?: string;
  firmwareVersion?: string;
}

export interface HostModel {
  node: string;
  gpuCount: number;
  gpuModel: string;
  gpuMemoryMiB: number;
  /** PCI buses of the GPUs, in index order (an HGX H100 board by default). */
  gpuBuses: string[];
  mounts: SimMount[];
  hcas: SimHca[];
  /** Seconds between checkpoints of the simulated training job, and how long one takes. */
  checkpointEverySeconds: number;
  checkpointSeconds: number;
  /** Bytes per second one checkpoint writes to the checkpoint mount. */
  checkpointWriteBytesPerSec: number;
  /** Per-port RDMA throughput during training steps, bytes per second each way. */
  rdmaBytesPerSec: number;
  /** Wall-clock seconds since boot at simulation start (kmsg timestamps). */
  uptimeSeconds: number;
}

export function defaultHostModel(overrides: Partial<HostModel> = {}): HostModel {
  return {
    node: 'sim-node-0',
    gpuCount: 8,
    gpuModel: 'NVIDIA H100 80GB HBM3',
    gpuMemoryMiB: 81559,
    gpuBuses: ['18', '2a', '3a', '5d', '9a', 'ab', 'ba', 'db'],
    mounts: [
      { device: '10.0.0.10:/datasets', mountpoint: '/mnt/datasets', fstype: 'nfs4', role: 'datasets' },
      { device: '10.0.0.11:/checkpoints', mountpoint: '/mnt/checkpoints', fstype: 'nfs4', role: 'checkpoints' },
      { device: '10.0.0.12:/home', mountpoint: '/home', fstype: 'nfs4', role: 'home' },
      { device: '10.0.0.13:/scratch', mountpoint: '/scratch', fstype: 'nfs', role: 'scratch' },
    ],
    hcas: [
      { name: 'mlx5_0', linkLayer: 'InfiniBand', rateText: '400 Gb/sec (4X NDR)', hcaType: 'MT4129', firmwareVersion: '28.41.1000' },
      { name: 'mlx5_1', linkLayer: 'Ethernet', rateText: '200 Gb/sec (2X NDR)', netdev: 'eth2', hcaType: 'MT4129', firmwareVersion: '28.41.1000' },
    ],
    checkpointEverySeconds: 600,
    checkpointSeconds: 40,
    checkpointWriteBytesPerSec: 2.5e9,
    rdmaBytesPerSec: 30e9,
    uptimeSeconds: 86_400,
    ...overrides,
  };
}
