// Parsed values → gantry.v1 telemetry messages. Absent values stay absent (proto3
// optional), and counters that cannot be a uint64 (negative after the signed reading of
// a wrapped kernel sum) are dropped rather than sent as garbage.
import {
  XidSeverity,
  type GpuTelemetry,
  type NfsMountTelemetry,
  type NicTelemetry,
  type RdmaPortTelemetry,
  type TelemetryBatch,
  type XidEvent as XidEventProto,
} from '@gantry/proto';
import type { GpuRates } from './gpu/derive.js';
import type { GpuMetrics } from './gpu/types.js';
import type { NfsMountRates } from './nfs/derive.js';
import type { NfsMountStats } from './nfs/mountstats.js';
import type { NicRates, RdmaPortRates } from './rdma/derive.js';
import type { RdmaPortStats } from './rdma/sysfs.js';
import type { TelemetrySample } from './snapshot.js';
import type { XidSeverityName } from './xid/catalog.js';
import type { XidEvent } from './xid/parse.js';

function u64(n: number | undefined): number | undefined {
  return n !== undefined && Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

function u64Map(rec: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(rec)) {
    const n = u64(v);
    if (n !== undefined) out[k] = n;
  }
  return out;
}

/** Copies only defined, finite values: ts-proto writes whatever keys are present. */
function defined<T extends object>(o: T): T {
  const out = {} as T;
  for (const k of Object.keys(o) as (keyof T)[]) {
    const v = o[k];
    if (v !== undefined && !(typeof v === 'number' && !Number.isFinite(v))) out[k] = v;
  }
  return out;
}

export function gpuToProto(g: GpuMetrics, rates?: GpuRates): GpuTelemetry {
  return {
    index: g.index ?? 0,
    uuid: g.uuid ?? '',
    pciBusId: g.pciBusId ?? '',
    name: g.name ?? '',
    clockEventReasons: g.clockEventReasons ?? [],
    nvlinks: (g.nvlinks ?? []).map((l) => ({
      link: l.link, active: l.active, errors: u64Map(l.errors), ...defined({ speedGigabytesPerSecond: l.speedGBps }),
    })),
    ...defined({
      utilizationGpuPercent: g.utilizationGpuPercent,
      utilizationMemoryPercent: g.utilizationMemoryPercent,
      memoryUsedMib: g.memoryUsedMiB,
      memoryTotalMib: g.memoryTotalMiB,
      temperatureGpuCelsius: g.temperatureGpuC,
      temperatureMemoryCelsius: g.temperatureMemoryC,
      powerDrawWatts: g.powerDrawW,
      powerLimitWatts: g.powerLimitW,
      smClockMhz: g.smClockMHz,
      memoryClockMhz: g.memoryClockMHz,
      maxSmClockMhz: g.maxSmClockMHz,
      clockEventReasonsMask: u64(g.clockEventReasonsMask),
      ecc: defined({
        volatileSingleBit: u64(g.eccVolatileSbe),
        volatileDoubleBit: u64(g.eccVolatileDbe),
        aggregateSingleBit: u64(g.eccAggregateSbe),
        aggregateDoubleBit: u64(g.eccAggregateDbe),
      }),
      retiredPagesSingleBit: u64(g.retiredPagesSbe),
      retiredPagesDoubleBit: u64(g.retiredPagesDbe),
      retiredPagesPending: g.retiredPagesPending,
      remappedRowsCorrectable: u64(g.remappedRowsCorrectable),
      remappedRowsUncorrectable: u64(g.remappedRowsUncorrectable),
      remappedRowsPending: g.remappedRowsPending,
      remappedRowsFailure: g.remappedRowsFailure,
      pcieReplayCount: u64(g.pcieReplayCounter),
      pcieLinkRecoveryCount: u64(g.pcieLinkRecoveryCounter),
      pcieLinkGen: u64(g.pcieLinkGen),
      pcieLinkWidth: u64(g.pcieLinkWidth),
      pstate: g.pstate,
      rates: rates
        ? {
          throttleFraction: rates.throttleFraction,
          ...defined({
            eccSingleBitPerSecond: rates.eccSbePerSec,
            eccDoubleBitPerSecond: rates.eccDbePerSec,
            pcieReplaysPerSecond: rates.pcieReplaysPerSec,
          }),
        }
        : undefined,
    }),
  };
}

export function nfsMountToProto(m: NfsMountStats, rates?: NfsMountRates): NfsMountTelemetry {
  const t = m.transport;
  return {
    device: m.device,
    mountpoint: m.mountpoint,
    fstype: m.fstype,
    statvers: m.statvers ?? '',
    // Only ops that ever ran: an NFSv4.2 mount lists ~70, most of them always zero.
    ops: [...m.ops.values()].filter((o) => o.ops > 0 || o.transmissions > 0).map((o) => ({
      op: o.op,
      ops: u64(o.ops) ?? 0,
      transmissions: u64(o.transmissions) ?? 0,
      majorTimeouts: u64(o.majorTimeouts) ?? 0,
      bytesSent: u64(o.bytesSent) ?? 0,
      bytesReceived: u64(o.bytesReceived) ?? 0,
      queueMs: o.queueMs,
      rttMs: o.rttMs,
      executeMs: o.executeMs,
      ...defined({ errors: u64(o.errors) }),
    })),
    ...defined({
      ageSeconds: u64(m.ageSeconds),
      serverReadBytes: u64(m.bytes['serverReadBytes']),
      serverWriteBytes: u64(m.bytes['serverWriteBytes']),
      transport: t
        ? {
          protocol: t.protocol,
          extra: u64Map(t.extra),
          ...defined({
            port: u64(t.port), bindCount: u64(t.bindCount), connectCount: u64(t.connectCount),
            sends: u64(t.sends), receives: u64(t.receives), badXids: u64(t.badXids),
            inflightSum: u64(t.inflightSum), backlogSum: u64(t.backlogSum), maxSlots: u64(t.maxSlots),
            sendingSum: u64(t.sendingSum), pendingSum: u64(t.pendingSum),
          }),
        }
        : undefined,
      rates: rates
        ? {
          ops: rates.ops.map((o) => ({
            op: o.op,
            opsPerSecond: o.opsPerSec,
            ...defined({
              retransmissionsPerSecond: o.retransPerSec, avgQueueMs: o.avgQueueMs, avgRttMs: o.avgRttMs,
              avgExecuteMs: o.avgExecuteMs, bytesSentPerSecond: o.bytesSentPerSec, bytesReceivedPerSecond: o.bytesReceivedPerSec,
            }),
          })),
          ...defined({
            readBytesPerSecond: rates.readBytesPerSec,
            writeBytesPerSecond: rates.writeBytesPerSec,
            opsPerSecond: rates.opsPerSec,
            retransmissionsPerSecond: rates.retransPerSec,
            majorTimeoutsPerSecond: rates.majorTimeoutsPerSec,
            errorsPerSecond: rates.errorsPerSec,
            avgQueueMs: rates.avgQueueMs,
            avgRttMs: rates.avgRttMs,
            avgExecuteMs: rates.avgExecuteMs,
            backlogQueueLength: rates.backlogQueueLength,
            inflightRequests: rates.inflightRequests,
            slotTableUtilization: rates.slotTableUtilization,
          }),
        }
        : undefined,
    }),
  };
}

export function rdmaPortToProto(p: RdmaPortStats, rates?: RdmaPortRates): RdmaPortTelemetry {
  return {
    device: p.device,
    port: p.port,
    linkLayer: p.linkLayer ?? '',
    state: p.state ?? '',
    physState: p.physState ?? '',
    rateText: p.rateText ?? '',
    hcaType: p.hcaType ?? '',
    firmwareVersion: p.firmwareVersion ?? '',
    counters: u64Map(p.counters),
    hwCounters: u64Map(p.hwCounters),
    ...defined({
      rateGbps: p.rateGbps,
      rates: rates
        ? defined({
          receiveBytesPerSecond: rates.receiveBytesPerSec,
          transmitBytesPerSecond: rates.transmitBytesPerSec,
          receivePacketsPerSecond: rates.receivePacketsPerSec,
          transmitPacketsPerSecond: rates.transmitPacketsPerSec,
          symbolErrorsPerSecond: rates.symbolErrorsPerSec,
          linkDownedPerSecond: rates.linkDownedPerSec,
          receiveErrorsPerSecond: rates.receiveErrorsPerSec,
          transmitDiscardsPerSecond: rates.transmitDiscardsPerSec,
          transmitWaitPerSecond: rates.transmitWaitPerSec,
          outOfSequencePerSecond: rates.outOfSequencePerSec,
          retransmissionsPerSecond: rates.retransmissionsPerSec,
          localAckTimeoutsPerSecond: rates.localAckTimeoutsPerSec,
          congestionNotificationsPerSecond: rates.congestionNotificationsPerSec,
          linkErrorRecoveryPerSecond: rates.linkErrorRecoveryPerSec,
        })
        : undefined,
    }),
  };
}

export function nicToProto(iface: string, counters: Record<string, number>, rates?: NicRates): NicTelemetry {
  return {
    interface: iface,
    counters: u64Map(counters),
    ...defined({
      rates: rates
        ? defined({
          receiveBytesPerSecond: rates.receiveBytesPerSec,
          transmitBytesPerSecond: rates.transmitBytesPerSec,
          receivePausePerSecond: rates.receivePausePerSec,
          transmitPausePerSecond: rates.transmitPausePerSec,
          receiveDiscardsPerSecond: rates.receiveDiscardsPerSec,
          receiveOutOfBufferPerSecond: rates.receiveOutOfBufferPerSec,
        })
        : undefined,
    }),
  };
}

export interface BatchContext {
  node: string;
  seq: number;
  droppedReports?: number;
}

export function sampleToProto(sample: TelemetrySample, ctx: BatchContext): TelemetryBatch {
  const interval = sample.intervalSeconds;
  return {
    node: ctx.node,
    time: new Date(sample.timeMs),
    seq: ctx.seq,
    gpus: sample.gpus.map((g) => gpuToProto(g.metrics, g.rates)),
    nfsMounts: sample.nfs.map((m) => nfsMountToProto(m.stats, m.rates)),
    rdmaPorts: sample.rdma.map((p) => rdmaPortToProto(p.stats, p.rates)),
    nics: sample.nics.map((n) => nicToProto(n.iface, n.counters, n.rates)),
    droppedReports: ctx.droppedReports ?? 0,
    // Stamped by the host reporter with the agent process that sends it.
    instanceId: '',
    collectorErrors: sample.errors.map((e) => ({ collector: e.collector, message: e.message })),
    ...(interval !== undefined
      ? { interval: { seconds: Math.floor(interval), nanos: Math.round((interval - Math.floor(interval)) * 1e9) } }
      : {}),
  };
}

const SEVERITY: Record<XidSeverityName, XidSeverity> = {
  info: XidSeverity.XID_SEVERITY_INFO,
  warning: XidSeverity.XID_SEVERITY_WARNING,
  error: XidSeverity.XID_SEVERITY_ERROR,
  critical: XidSeverity.XID_SEVERITY_CRITICAL,
};

/** `time` is the log record's own time when it has one, else when the agent read it. */
export function xidEventToProto(e: XidEvent, node: string, readAt: Date = new Date()): XidEventProto {
  return {
    eventId: `${node}:${e.eventId}`,
    node,
    time: e.time ?? readAt,
    gpuUuid: e.gpuUuid ?? '',
    pciBusId: e.pciBusId ?? '',
    xid: e.xid,
    processName: e.processName ?? '',
    message: e.message,
    mnemonic: e.mnemonic,
    causeClass: e.causeClass,
    severity: SEVERITY[e.severity],
    immediateAction: e.immediateAction,
    investigatoryAction: e.investigatoryAction,
    orchestratorHint: e.orchestratorHint,
    rawLine: e.raw,
    inferred: e.inferred,
    instanceId: '',
    ...defined({ gpuIndex: e.gpuIndex, pid: e.pid, fatal: e.fatal }),
  };
}
