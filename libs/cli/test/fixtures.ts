// Proto messages shared by the formatting and CLI tests.
import { Job, JobState, Node, NodeHostEvent, NodeState, RankPhase, TelemetryBatch, TopologyRequirement, XidSeverity } from '@gantry/proto';

export const NOW = new Date('2026-01-01T12:00:00Z');
export const ago = (s: number) => new Date(NOW.getTime() - s * 1_000);

export const sampleJob = Job.fromPartial({
  id: 'j-42',
  spec: {
    name: 'llama',
    tenant: 'ml',
    nodes: 2,
    gpusPerNode: 8,
    gpuTypes: ['H100'],
    command: ['torchrun', 'train.py'],
    priorityClass: 'high',
    topology: TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SWITCH,
    timeLimitSeconds: 3600,
  },
  state: JobState.JOB_STATE_FAILED,
  reason: 'rank 1 exited with code 3',
  attempt: 1,
  createdAt: ago(300),
  attempts: [
    {
      number: 1,
      scheduledAt: ago(290),
      startedAt: ago(280),
      finishedAt: ago(10),
      placement: [
        { rank: 0, node: 'gpu-01', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7], address: '10.0.0.1' },
        { rank: 1, node: 'gpu-02', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7], address: '10.0.0.2' },
      ],
      ranks: [
        { rank: 0, phase: RankPhase.RANK_PHASE_EXITED, pid: 100, signal: 'SIGTERM' },
        { rank: 1, phase: RankPhase.RANK_PHASE_EXITED, pid: 200, exitCode: 3 },
      ],
      failure: { reason: 'process exited', rank: 1, exitCode: 3, node: 'gpu-02' },
      resumedFromCheckpoint: 'ckpt-7',
    },
  ],
});

export const sampleNode = Node.fromPartial({
  name: 'gpu-01',
  state: NodeState.NODE_STATE_READY,
  address: '10.0.0.1',
  gpus: [0, 1, 2, 3].map((index) => ({ index, model: 'H100', memoryMib: 81_559, uuid: `GPU-${index}`, pciBusId: `0000:1${index}:00.0` })),
  allocations: [{ gpuIndex: 1, jobId: 'j-42', attempt: 1, rank: 0 }],
  topology: { nvlinkDomain: 'nvl-1', leafSwitch: 'leaf-2', spine: 'spine-1', rack: 'r3' },
  labels: { zone: 'a' },
  lastHeartbeat: ago(3),
});

const MIB_80G = 81_559;

/**
 * One collection cycle of an 8-GPU-class host, cut down: GPU 0 busy and healthy, GPU 1 hot and
 * power-capped with a pending row remap and NVLink errors, GPU 2 after it fell off the bus
 * (nvidia-smi reports almost nothing: every optional absent); two NFS mounts (one without
 * transport rates on its first interval), an InfiniBand and a RoCE port, one NIC.
 */
export const sampleTelemetry = TelemetryBatch.fromPartial({
  node: 'gpu-01',
  time: ago(4),
  interval: { seconds: 5, nanos: 0 },
  seq: 1234,
  droppedReports: 0,
  gpus: [
    {
      index: 0, uuid: 'GPU-0', pciBusId: '00000000:18:00.0', name: 'NVIDIA H100 80GB HBM3',
      utilizationGpuPercent: 97, utilizationMemoryPercent: 61, memoryUsedMib: 40_960, memoryTotalMib: MIB_80G,
      temperatureGpuCelsius: 64, powerDrawWatts: 612.4, powerLimitWatts: 700, smClockMhz: 1980, maxSmClockMhz: 1980,
      clockEventReasonsMask: 0, clockEventReasons: [],
      ecc: { volatileSingleBit: 0, volatileDoubleBit: 0 },
      remappedRowsCorrectable: 0, remappedRowsUncorrectable: 0, remappedRowsPending: false, remappedRowsFailure: false,
      pcieReplayCount: 0,
      pcieLinkRecoveryCount: 191,
      nvlinks: [0, 1, 2].map((link) => ({ link, active: true, speedGigabytesPerSecond: 26.562, errors: { replay: 0, recovery: 0, crc: 0 } })),
      rates: { eccSingleBitPerSecond: 0, pcieReplaysPerSecond: 0, throttleFraction: {} },
    },
    {
      index: 1, uuid: 'GPU-1', pciBusId: '00000000:2a:00.0', name: 'NVIDIA H100 80GB HBM3',
      utilizationGpuPercent: 100, memoryUsedMib: 79_000, memoryTotalMib: MIB_80G,
      temperatureGpuCelsius: 87, powerDrawWatts: 699.9, powerLimitWatts: 700, smClockMhz: 1410,
      clockEventReasonsMask: 0x24, clockEventReasons: ['sw_power_cap', 'sw_thermal_slowdown'],
      ecc: { volatileSingleBit: 12, volatileDoubleBit: 0 },
      remappedRowsPending: true, remappedRowsFailure: false,
      pcieReplayCount: 3,
      pcieLinkRecoveryCount: 12,
      nvlinks: [
        { link: 0, active: true, errors: { replay: 4, crc: 1 } },
        { link: 1, active: false, errors: {} },
      ],
      rates: { throttleFraction: { sw_power_cap: 0.35 } },
    },
    { index: 2, uuid: 'GPU-2', pciBusId: '00000000:3b:00.0', name: 'NVIDIA H100 80GB HBM3', clockEventReasons: [], nvlinks: [] },
  ],
  nfsMounts: [
    {
      device: 'nfs01:/export/home', mountpoint: '/home', fstype: 'nfs4', statvers: '1.1',
      transport: { protocol: 'tcp', extra: {} },
      rates: {
        readBytesPerSecond: 12_500_000, writeBytesPerSecond: 250_000_000, opsPerSecond: 1530.25, retransmissionsPerSecond: 0.4,
        avgRttMs: 1.25, avgExecuteMs: 1.6, backlogQueueLength: 0.5, slotTableUtilization: 0.42, ops: [],
      },
    },
    { device: 'nfs02:/ckpt', mountpoint: '/mnt/checkpoints', fstype: 'nfs', statvers: '1.0', transport: { protocol: 'rdma', extra: {} }, rates: { ops: [] } },
  ],
  rdmaPorts: [
    {
      device: 'mlx5_0', port: 1, linkLayer: 'InfiniBand', state: 'ACTIVE', physState: 'LinkUp', rateGbps: 400, rateText: '400 Gb/sec (4X NDR)',
      counters: { symbol_error: 0, link_downed: 1, port_rcv_errors: 7 },
      hwCounters: {},
      rates: { receiveBytesPerSecond: 12_140_000_000, transmitBytesPerSecond: 11_875_000_000, symbolErrorsPerSecond: 0, linkDownedPerSecond: 0, receiveErrorsPerSecond: 0.2 },
    },
    {
      device: 'mlx5_1', port: 1, linkLayer: 'Ethernet', state: 'DOWN', physState: 'Disabled', rateText: '',
      counters: {}, hwCounters: { out_of_sequence: 42, roce_adp_retrans: 5, roce_adp_retrans_to: 1 },
    },
  ],
  nics: [{ interface: 'eth2', counters: {}, rates: { receiveBytesPerSecond: 1_250_000_000, transmitBytesPerSecond: 125_000_000, receivePausePerSecond: 12, transmitPausePerSecond: 0, receiveDiscardsPerSecond: 0 } }],
  collectorErrors: [{ collector: 'ethtool', message: 'ethtool -S eth3: exit code 1\nmore detail' }],
});

/** The node's event log as ListNodeEvents returns it (newest first). */
export const sampleEvents: NodeHostEvent[] = [
  {
    time: ago(30),
    event: {
      $case: 'xid',
      xid: {
        eventId: 'x-2', node: 'gpu-01', time: ago(30), gpuIndex: 2, gpuUuid: 'GPU-2', pciBusId: '00000000:3b:00.0', xid: 79, pid: undefined, processName: '',
        message: 'GPU has fallen off the bus.', mnemonic: 'ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS', causeClass: 'hardware',
        severity: XidSeverity.XID_SEVERITY_CRITICAL, immediateAction: 'RESTART_BM', investigatoryAction: 'CONTACT_SUPPORT',
        orchestratorHint: 'drain node', rawLine: 'NVRM: Xid (PCI:0000:3b:00): 79, pid=\'<unknown>\', GPU has fallen off the bus.', inferred: false, instanceId: '',
      },
    },
  },
  {
    time: ago(31),
    event: { $case: 'transition', transition: { eventId: 'n-2', nodeName: 'gpu-01', fromState: NodeState.NODE_STATE_READY, toState: NodeState.NODE_STATE_LOST, reason: 'node gpu-01 lost: no heartbeat for 4s', time: ago(31) } },
  },
  {
    time: ago(600),
    event: {
      $case: 'xid',
      xid: {
        eventId: 'x-1', node: 'gpu-01', time: ago(600), gpuIndex: undefined, gpuUuid: '', pciBusId: '00000000:18:00.0', xid: 13, pid: 4242, processName: 'python',
        message: 'Graphics SM Warp Exception', mnemonic: 'GR_EXCEPTION', causeClass: 'application', severity: XidSeverity.XID_SEVERITY_ERROR,
        immediateAction: '', investigatoryAction: '', orchestratorHint: '', rawLine: '', inferred: false, instanceId: '',
      },
    },
  },
  {
    time: ago(3_600),
    event: { $case: 'transition', transition: { eventId: 'n-1', nodeName: 'gpu-01', fromState: NodeState.NODE_STATE_UNSPECIFIED, toState: NodeState.NODE_STATE_READY, reason: '', time: ago(3_600) } },
  },
];
