// The share of NFS WRITE latency spent queueing in the client, from the agent's mountstats
// collector (per mount and interval: WRITE ops/s and the interval's average queue, RTT and
// execute milliseconds per op). mountstats' execute time runs from the RPC's creation to its
// completion, so it holds the queueing and the RTT: queue / execute is the client's share.
// A tally, so a caller can feed what it reads as it reads it (the report's service each node's
// NfsWriteSamples, the simulations whole batches a window at a time) without holding it all.
import type { NfsQueueingFigures, NfsWriteSample, TelemetryBatch } from '@gantry/proto';
import { nfsWriteSampleOf } from '@gantry/store';

export class NfsQueueTally {
  private readonly nodes = new Set<string>();
  private samples = 0;
  private ops = 0;
  private queueMs = 0;
  private rttMs = 0;
  private executeMs = 0;
  private oldestMs: number | undefined;

  constructor(private readonly fromMs: number, private readonly toMs: number) {}

  add(batch: TelemetryBatch): void {
    this.addSample(batch.node, nfsWriteSampleOf(batch));
  }

  /** A batch's NFS WRITE figures as the store keeps them (NodeTelemetryStore.nfsWritesSince). */
  addSample(node: string, sample: NfsWriteSample): void {
    const at = sample.time?.getTime() ?? 0;
    if (at < this.fromMs || at > this.toMs) return;
    this.oldestMs = Math.min(this.oldestMs ?? at, at);
    // The interval the rates were derived over; the first batch of an agent has none.
    const sec = sample.interval ? sample.interval.seconds + sample.interval.nanos / 1e9 : 0;
    if (sec <= 0) return;
    for (const w of sample.mounts) {
      if (w.opsPerSecond <= 0 || w.avgExecuteMs === undefined) continue;
      const ops = w.opsPerSecond * sec;
      this.samples++;
      this.nodes.add(node);
      this.ops += ops;
      this.queueMs += (w.avgQueueMs ?? 0) * ops;
      this.rttMs += (w.avgRttMs ?? 0) * ops;
      this.executeMs += w.avgExecuteMs * ops;
    }
  }

  figures(): NfsQueueingFigures {
    return {
      nodes: this.nodes.size, samples: this.samples, writeOps: this.ops, queueMs: this.queueMs, rttMs: this.rttMs, executeMs: this.executeMs,
      queueShare: this.executeMs > 0 ? Math.min(this.queueMs / this.executeMs, 1) : 0,
      coveredFrom: this.oldestMs === undefined ? undefined : new Date(this.oldestMs),
    };
  }
}
