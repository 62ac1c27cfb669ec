// What the agent calls: one TelemetryCollector per host, `collect()` once per interval
// gives the next TelemetryBatch; `xidEvents()` turns the backend's kernel log into
// classified XidEvents for as long as the agent runs.
import type { TelemetryBatch, XidEvent as XidEventProto } from '@gantry/proto';
import type { DeviceBackend, KernelLogReadOptions } from '../device/types.js';
import type { NfsDeriveOptions } from './nfs/derive.js';
import { GpuInventory } from './pci.js';
import { deriveSample, parseSnapshot, readRaw, type HostSnapshot, type TelemetrySample } from './snapshot.js';
import { sampleToProto, xidEventToProto } from './to-proto.js';
import { XidLogParser, type XidEvent } from './xid/parse.js';
import { parseKernelLogLine } from './xid/kernel-log.js';

export interface TelemetryCollectorOptions extends NfsDeriveOptions {
  node: string;
  now?: () => number;
}

export class TelemetryCollector {
  private prev: HostSnapshot | undefined;
  private seq = 0;
  /** Set by the report buffer: batches it had to drop since the agent started. */
  droppedReports = 0;
  /** The latest sample, for the Prometheus exporter and local debugging. */
  latest: TelemetrySample | undefined;

  constructor(private readonly backend: DeviceBackend, private readonly options: TelemetryCollectorOptions) {}

  /** Reads, parses and derives one cycle. Never rejects: failures land in collectorErrors. */
  async collectSample(): Promise<TelemetrySample> {
    const raw = await readRaw(this.backend);
    const snap = parseSnapshot(raw, (this.options.now ?? Date.now)());
    const sample = deriveSample(this.prev, snap, this.options);
    this.prev = snap;
    this.latest = sample;
    return sample;
  }

  async collect(): Promise<TelemetryBatch> {
    const sample = await this.collectSample();
    return sampleToProto(sample, { node: this.options.node, seq: ++this.seq, droppedReports: this.droppedReports });
  }
}

export interface XidRecordOptions extends KernelLogReadOptions {
  signal?: AbortSignal;
  /** The parser to feed (its inventory kept current by the caller); by default one mapped to the inventory at start. */
  parser?: XidLogParser;
  /** Wall-clock ms of the boot: kmsg records carry only the time since boot. */
  bootTimeMs?: number;
}

/** One kernel log line read: the XIDs it completed and, for a kmsg record, its sequence number. */
export interface XidRecord {
  seq?: number;
  events: XidEvent[];
}

/**
 * The backend's kernel log line by line, with the classified Xid events each completes, for a
 * caller that keeps a cursor (seq) of what it has handled. Ends when the signal aborts or the
 * log source ends.
 */
export async function* xidRecords(backend: DeviceBackend, options: XidRecordOptions = {}): AsyncGenerator<XidRecord> {
  const { signal, parser: given, bootTimeMs, ...read } = options;
  const parser = given ?? new XidLogParser({ inventory: new GpuInventory(await backend.fingerprint().catch(() => [])), year: new Date().getFullYear() });
  for await (const line of backend.kernelLog(signal, read)) {
    const seq = line.startsWith(' ') ? undefined : parseKernelLogLine(line).seq;
    let events = parser.push(line);
    if (bootTimeMs !== undefined) {
      events = events.map((e) => (e.time === undefined && e.uptimeSeconds !== undefined ? { ...e, time: new Date(bootTimeMs + e.uptimeSeconds * 1000) } : e));
    }
    yield { ...(seq !== undefined ? { seq } : {}), events };
    if (signal?.aborted) return;
  }
}

/**
 * Classified Xid events from the backend's kernel log, mapped to the GPU inventory taken at
 * start. Ends when the signal aborts or the log source ends.
 */
export async function* xidEvents(backend: DeviceBackend, signal?: AbortSignal): AsyncGenerator<XidEvent> {
  for await (const r of xidRecords(backend, signal ? { signal } : {})) yield* r.events;
}

/** xidEvents as gantry.v1.XidEvent messages. */
export async function* xidEventMessages(backend: DeviceBackend, node: string, signal?: AbortSignal): AsyncGenerator<XidEventProto> {
  for await (const e of xidEvents(backend, signal)) yield xidEventToProto(e, node);
}
