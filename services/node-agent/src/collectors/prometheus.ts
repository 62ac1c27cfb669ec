// Exposes the latest TelemetryBatch (and a running count of Xid events) on the agent's
// /metrics, with Prometheus names and base units (bytes, seconds, hertz).
//
// Each family is rendered from the latest batch at scrape time instead of being kept in
// prom-client Gauges: a GPU, mount or port that disappears stops being exported rather
// than freezing at its last value, and nothing is copied per cycle. The families implement
// the metric shape prom-client's Registry reads (name, help, type, get()), so this module
// needs only the Registry the service kit creates, not its own prom-client dependency.
import type { GpuTelemetry, TelemetryBatch, XidEvent as XidEventProto } from '@gantry/proto';
import type { createRegistry } from '@gantry/service-kit/metrics';
import { CLOCK_EVENT_REASON_BITS } from './gpu/types.js';

export type Registry = ReturnType<typeof createRegistry>;
type Labels = Record<string, string | number>;
interface Value { labels: Labels; value: number }
type MetricType = 'gauge' | 'counter';

interface Family {
  name: string;
  help: string;
  type: MetricType;
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: MetricType; aggregator: 'sum'; values: Value[] }>;
  reset(): void;
}

const MIB = 1024 * 1024;

export class TelemetryMetrics {
  private batch: TelemetryBatch | undefined;
  private readonly xidCounts = new Map<string, Value>();
  private readonly families: Family[] = [];

  /** Replaces the batch that scrapes render. */
  update(batch: TelemetryBatch): void {
    this.batch = batch;
  }

  /** Counts an Xid event for gantry_xid_events_total. */
  recordXid(e: Pick<XidEventProto, 'xid' | 'causeClass' | 'gpuIndex' | 'gpuUuid'>): void {
    const key = `${e.xid}|${e.causeClass}|${e.gpuIndex ?? ''}`;
    const v = this.xidCounts.get(key);
    if (v) v.value++;
    else this.xidCounts.set(key, { labels: { xid: e.xid, class: e.causeClass, gpu: e.gpuIndex ?? '', uuid: e.gpuUuid }, value: 1 });
  }

  /** Registers every family with the registry (once per registry). */
  register(registry: Registry): void {
    this.define();
    for (const f of this.families) registry.registerMetric(f as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  private family(name: string, type: MetricType, help: string, values: (b: TelemetryBatch) => Value[]): void {
    const latest = (): TelemetryBatch | undefined => this.batch;
    this.families.push({
      name, help, type, aggregator: 'sum',
      async get() {
        const batch = latest();
        return { name, help, type, aggregator: 'sum' as const, values: batch ? values(batch).filter((v) => Number.isFinite(v.value)) : [] };
      },
      reset() { /* values come from the batch */ },
    });
  }

  private gpu(name: string, type: MetricType, help: string, pick: (g: GpuTelemetry) => number | undefined): void {
    this.family(name, type, help, (b) => b.gpus.flatMap((g) => {
      const v = pick(g);
      return v === undefined ? [] : [{ labels: gpuLabels(g), value: v }];
    }));
  }

  private define(): void {
    if (this.families.length > 0) return;
    this.gpu('gantry_gpu_utilization_percent', 'gauge', 'GPU utilisation.', (g) => g.utilizationGpuPercent);
    this.gpu('gantry_gpu_memory_utilization_percent', 'gauge', 'GPU memory controller utilisation.', (g) => g.utilizationMemoryPercent);
    this.gpu('gantry_gpu_memory_used_bytes', 'gauge', 'GPU framebuffer memory used.', (g) => mul(g.memoryUsedMib, MIB));
    this.gpu('gantry_gpu_memory_total_bytes', 'gauge', 'GPU framebuffer memory total.', (g) => mul(g.memoryTotalMib, MIB));
    this.gpu('gantry_gpu_temperature_celsius', 'gauge', 'GPU core temperature.', (g) => g.temperatureGpuCelsius);
    this.gpu('gantry_gpu_memory_temperature_celsius', 'gauge', 'GPU HBM temperature.', (g) => g.temperatureMemoryCelsius);
    this.gpu('gantry_gpu_power_watts', 'gauge', 'GPU power draw.', (g) => g.powerDrawWatts);
    this.gpu('gantry_gpu_power_limit_watts', 'gauge', 'GPU enforced power limit.', (g) => g.powerLimitWatts);
    this.gpu('gantry_gpu_sm_clock_hertz', 'gauge', 'GPU SM clock.', (g) => mul(g.smClockMhz, 1e6));
    this.gpu('gantry_gpu_memory_clock_hertz', 'gauge', 'GPU memory clock.', (g) => mul(g.memoryClockMhz, 1e6));
    this.gpu('gantry_gpu_pcie_replays_total', 'counter', 'PCIe replays since the driver loaded.', (g) => g.pcieReplayCount);
    this.gpu('gantry_gpu_pcie_link_recoveries_total', 'counter', 'PCIe link retrains (L0 to Recovery) since the driver loaded.', (g) => g.pcieLinkRecoveryCount);
    this.gpu('gantry_gpu_retired_pages_pending', 'gauge', '1 when a page retirement waits for a GPU reset.', (g) => bool(g.retiredPagesPending));
    this.gpu('gantry_gpu_remapped_rows_pending', 'gauge', '1 when a row remap waits for a GPU reset.', (g) => bool(g.remappedRowsPending));
    this.gpu('gantry_gpu_remapped_rows_failure', 'gauge', '1 when a row remap failed.', (g) => bool(g.remappedRowsFailure));
    this.family('gantry_gpu_clock_event_reason_active', 'gauge', 'Clocks event (throttle) reasons currently active (1) or not (0).', (b) =>
      b.gpus.flatMap((g) => (g.clockEventReasonsMask === undefined ? [] : CLOCK_EVENT_REASON_BITS.map(([bit, reason]) => ({
        labels: { ...gpuLabels(g), reason }, value: (g.clockEventReasonsMask! & bit) !== 0 ? 1 : 0,
      })))));
    this.family('gantry_gpu_throttle_ratio', 'gauge', 'Share of the last interval the clocks were held down, by reason.', (b) =>
      b.gpus.flatMap((g) => Object.entries(g.rates?.throttleFraction ?? {}).map(([reason, value]) => ({ labels: { ...gpuLabels(g), reason }, value }))));
    this.family('gantry_gpu_ecc_errors_total', 'counter', 'ECC errors by type (single_bit corrected, double_bit uncorrected) and scope.', (b) =>
      b.gpus.flatMap((g) => {
        const e = g.ecc;
        const rows: Array<[string, string, number | undefined]> = [
          ['single_bit', 'volatile', e?.volatileSingleBit], ['double_bit', 'volatile', e?.volatileDoubleBit],
          ['single_bit', 'aggregate', e?.aggregateSingleBit], ['double_bit', 'aggregate', e?.aggregateDoubleBit],
        ];
        return rows.flatMap(([type, scope, v]) => (v === undefined ? [] : [{ labels: { ...gpuLabels(g), type, scope }, value: v }]));
      }));
    this.family('gantry_gpu_retired_pages_total', 'counter', 'Retired framebuffer pages by cause.', (b) =>
      b.gpus.flatMap((g) => pairs(gpuLabels(g), 'type', { single_bit: g.retiredPagesSingleBit, double_bit: g.retiredPagesDoubleBit })));
    this.family('gantry_gpu_remapped_rows_total', 'counter', 'Remapped HBM rows by cause.', (b) =>
      b.gpus.flatMap((g) => pairs(gpuLabels(g), 'type', { correctable: g.remappedRowsCorrectable, uncorrectable: g.remappedRowsUncorrectable })));
    this.family('gantry_gpu_nvlink_errors_total', 'counter', 'NVLink error counters by link and type.', (b) =>
      b.gpus.flatMap((g) => g.nvlinks.flatMap((l) => Object.entries(l.errors).map(([type, value]) => ({ labels: { ...gpuLabels(g), link: l.link, type }, value })))));

    const nfs = (name: string, help: string, pick: (r: NonNullable<TelemetryBatch['nfsMounts'][number]['rates']>) => number | undefined, scale = 1): void =>
      this.family(name, 'gauge', help, (b) => b.nfsMounts.flatMap((m) => {
        const v = m.rates ? pick(m.rates) : undefined;
        return v === undefined ? [] : [{ labels: { mount: m.mountpoint, server: m.device }, value: v * scale }];
      }));
    nfs('gantry_nfs_read_bytes_per_second', 'NFS bytes read from the server per second.', (r) => r.readBytesPerSecond);
    nfs('gantry_nfs_write_bytes_per_second', 'NFS bytes written to the server per second.', (r) => r.writeBytesPerSecond);
    nfs('gantry_nfs_operations_per_second', 'NFS RPC operations per second.', (r) => r.opsPerSecond);
    nfs('gantry_nfs_retransmissions_per_second', 'NFS RPC retransmissions per second.', (r) => r.retransmissionsPerSecond);
    nfs('gantry_nfs_major_timeouts_per_second', 'NFS RPC major timeouts per second.', (r) => r.majorTimeoutsPerSecond);
    nfs('gantry_nfs_rpc_queue_seconds', 'Average time an NFS RPC waited to be sent in the last interval.', (r) => r.avgQueueMs, 1e-3);
    nfs('gantry_nfs_rpc_rtt_seconds', 'Average NFS RPC round trip in the last interval.', (r) => r.avgRttMs, 1e-3);
    nfs('gantry_nfs_rpc_execute_seconds', 'Average NFS RPC total time in the last interval.', (r) => r.avgExecuteMs, 1e-3);
    nfs('gantry_nfs_rpc_backlog_queue_length', 'Average RPC backlog queue length seen by a send.', (r) => r.backlogQueueLength);
    nfs('gantry_nfs_rpc_inflight_requests', 'Average RPC requests in flight seen by a send.', (r) => r.inflightRequests);
    nfs('gantry_nfs_rpc_slot_table_utilization_ratio', 'RPC requests in flight over the slot table size.', (r) => r.slotTableUtilization);
    this.family('gantry_nfs_operations_total', 'counter', 'NFS RPC operations by op.', (b) =>
      b.nfsMounts.flatMap((m) => m.ops.map((o) => ({ labels: { mount: m.mountpoint, op: o.op }, value: o.ops }))));
    this.family('gantry_nfs_major_timeouts_total', 'counter', 'NFS RPC major timeouts by op.', (b) =>
      b.nfsMounts.flatMap((m) => m.ops.map((o) => ({ labels: { mount: m.mountpoint, op: o.op }, value: o.majorTimeouts }))));

    const port = (name: string, type: MetricType, help: string, pick: (p: TelemetryBatch['rdmaPorts'][number]) => number | undefined): void =>
      this.family(name, type, help, (b) => b.rdmaPorts.flatMap((p) => {
        const v = pick(p);
        return v === undefined ? [] : [{ labels: { device: p.device, port: p.port }, value: v }];
      }));
    port('gantry_rdma_port_receive_bytes_total', 'counter', 'Bytes received on the port (port_rcv_data x 4).', (p) => mul(p.counters['port_rcv_data'], 4));
    port('gantry_rdma_port_transmit_bytes_total', 'counter', 'Bytes sent on the port (port_xmit_data x 4).', (p) => mul(p.counters['port_xmit_data'], 4));
    port('gantry_rdma_port_receive_packets_total', 'counter', 'Packets received on the port.', (p) => p.counters['port_rcv_packets']);
    port('gantry_rdma_port_transmit_packets_total', 'counter', 'Packets sent on the port.', (p) => p.counters['port_xmit_packets']);
    port('gantry_rdma_port_receive_bytes_per_second', 'gauge', 'Receive throughput over the last interval.', (p) => p.rates?.receiveBytesPerSecond);
    port('gantry_rdma_port_transmit_bytes_per_second', 'gauge', 'Transmit throughput over the last interval.', (p) => p.rates?.transmitBytesPerSecond);
    port('gantry_rdma_port_up', 'gauge', '1 when the port state is ACTIVE.', (p) => (p.state === '' ? undefined : p.state === 'ACTIVE' ? 1 : 0));
    port('gantry_rdma_port_rate_bits_per_second', 'gauge', 'Negotiated link rate.', (p) => mul(p.rateGbps, 1e9));
    this.family('gantry_rdma_port_errors_total', 'counter', 'Port error and retransmission counters by name.', (b) =>
      b.rdmaPorts.flatMap((p) => {
        const all = { ...pickKeys(p.counters, PORT_ERROR_COUNTERS), ...pickKeys(p.hwCounters, HW_ERROR_COUNTERS) };
        return Object.entries(all).map(([counter, value]) => ({ labels: { device: p.device, port: p.port, counter }, value }));
      }));
    this.family('gantry_nic_pause_frames_per_second', 'gauge', 'Ethernet pause (global + PFC) frames per second by direction.', (b) =>
      b.nics.flatMap((n) => pairs({ interface: n.interface }, 'direction', { rx: n.rates?.receivePausePerSecond, tx: n.rates?.transmitPausePerSecond })));
    this.family('gantry_nic_receive_discards_per_second', 'gauge', 'Packets the NIC discarded on receive per second.', (b) =>
      b.nics.flatMap((n) => (n.rates?.receiveDiscardsPerSecond === undefined ? [] : [{ labels: { interface: n.interface }, value: n.rates.receiveDiscardsPerSecond }])));

    this.family('gantry_telemetry_collector_errors', 'gauge', 'Collectors that failed in the last cycle.', (b) =>
      b.collectorErrors.map((e) => ({ labels: { collector: e.collector }, value: 1 })));
    this.family('gantry_telemetry_dropped_reports_total', 'counter', 'Telemetry reports dropped since the agent started.', (b) =>
      [{ labels: {}, value: b.droppedReports }]);
    const xid = this.xidCounts;
    this.families.push({
      name: 'gantry_xid_events_total', help: 'NVIDIA Xid events read from the kernel log.', type: 'counter', aggregator: 'sum',
      async get() {
        return { name: 'gantry_xid_events_total', help: 'NVIDIA Xid events read from the kernel log.', type: 'counter' as const, aggregator: 'sum' as const, values: [...xid.values()] };
      },
      reset() { xid.clear(); },
    });
  }
}

const PORT_ERROR_COUNTERS = ['symbol_error', 'link_downed', 'link_error_recovery', 'port_rcv_errors', 'port_xmit_discards',
  'port_rcv_remote_physical_errors', 'local_link_integrity_errors', 'excessive_buffer_overrun_errors', 'port_xmit_wait'];
const HW_ERROR_COUNTERS = ['out_of_sequence', 'out_of_buffer', 'packet_seq_err', 'local_ack_timeout_err', 'rnr_nak_retry_err',
  'roce_adp_retrans', 'roce_adp_retrans_to', 'roce_slow_restart', 'roce_slow_restart_cnps', 'np_cnp_sent', 'rp_cnp_handled'];

function gpuLabels(g: GpuTelemetry): Labels {
  return { gpu: g.index, uuid: g.uuid };
}

function mul(v: number | undefined, k: number): number | undefined {
  return v === undefined ? undefined : v * k;
}

function bool(v: boolean | undefined): number | undefined {
  return v === undefined ? undefined : v ? 1 : 0;
}

function pairs(base: Labels, label: string, values: Record<string, number | undefined>): Value[] {
  return Object.entries(values).flatMap(([k, v]) => (v === undefined ? [] : [{ labels: { ...base, [label]: k }, value: v }]));
}

function pickKeys(rec: Record<string, number>, keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) if (rec[k] !== undefined) out[k] = rec[k];
  return out;
}
