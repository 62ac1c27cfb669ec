// What the agent calls: one TelemetryCollector per host, `collect()` once per interval
// gives the next TelemetryBatch; `xidEvents()` turns the backend's kernel log into
// classified XidEvents for as long as the agent runs.
import type { TelemetryBatch, XidEvent as XidEventProto } from '@gantry/proto';
import type { DeviceBackend } from '../device/types.js';
import type { NfsDeriveOptions } from './nfs/derive.js';
import { GpuInventory } from './pci.js';
import { deriveSample, parseSnapshot, readRaw, type HostSnapshot, type TelemetrySample } from './snapshot.js';
import { sampleToProto, xidEventToProto } from './to-proto.js';
import { XidLogParser, type XidEvent } from './xid/parse.js';

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

/**
 * Classified Xid events from the backend's kernel log, mapped to the GPU inventory taken at
 * start. Ends when the signal aborts or the log source ends.
 */
export async function* xidEvents(backend: DeviceBackend, signal?: AbortSignal): AsyncGenerator<XidEvent> {
  const inventory = new GpuInventory(await backend.fingerprint().catch(() => []));
  const parser = new XidLogParser({ inventory, year: new Date().getFullYear() });
  for await (const line of backend.kernelLog(signal)) {
    for (const e of parser.push(line)) yield e;
    if (signal?.aborted) return;
  }
}

/** xidEvents as gantry.v1.XidEvent messages. */
export async function* xidEventMessages(backend: DeviceBackend, node: string, signal?: AbortSignal): AsyncGenerator<XidEventProto> {
  for await (const e of xidEvents(backend, signal)) yield xidEventToProto(e, node);
}
