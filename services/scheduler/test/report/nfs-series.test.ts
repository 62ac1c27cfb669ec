// The operations report's NFS WRITE queueing, read from real Redis by the report's own reader,
// over windows longer than the whole batches a node keeps (TELEMETRY_HISTORY_CAP, minutes):
// the figures come from each node's NFS WRITE series and equal the tally of every batch the
// nodes sent in the window; a window reaching before a full series is named in the limits.
import { describe, expect, it } from 'vitest';
import { TelemetryBatch, type NfsQueueingFigures, type OperationsReport } from '@gantry/proto';
import { JobStore, NFS_WRITE_SERIES_CAP, NodeStore, NodeTelemetryStore, TELEMETRY_HISTORY_CAP, keys } from '@gantry/store';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';
import type { SchedulerContext } from '../../src/context.js';
import { NfsQueueTally } from '../../src/report/nfs.js';
import { ReportSource } from '../../src/report/service.js';

const redis = useRedis();
const T0 = Date.UTC(2026, 10, 2);
const STEP_MS = 10_000;

/** Batch k of a node, 10 s apart: two mounts whose WRITE figures vary with k (one mount idle every fifth batch), and a READ op the report ignores. */
function batch(node: string, k: number): TelemetryBatch {
  const write = (mount: number) => ({
    op: 'WRITE', opsPerSecond: k % 5 === 0 && mount === 1 ? 0 : 5 + ((k * 7 + mount * 3) % 40),
    avgQueueMs: (k * 13 + mount) % 17, avgRttMs: 2 + (k % 3), avgExecuteMs: 4 + ((k * 13 + mount) % 17) + (k % 3),
  });
  return TelemetryBatch.create({
    node, time: new Date(T0 + k * STEP_MS), interval: k === 0 ? undefined : { seconds: 10, nanos: 0 }, seq: k,
    nfsMounts: [0, 1].map((m) => ({ device: `srv:/m${m}`, mountpoint: `/mnt/m${m}`, rates: { ops: [{ op: 'READ', opsPerSecond: 50, avgQueueMs: 9, avgRttMs: 1, avgExecuteMs: 10 }, write(m)] } })),
  });
}

async function report(sinceSeconds: number, nowMs: number): Promise<OperationsReport> {
  const ctx = { redis: redis(), jobs: new JobStore(redis()), nodes: new NodeStore(redis()) } as unknown as SchedulerContext;
  const source = new ReportSource(ctx, '127.0.0.1:1', undefined, 500);
  try {
    return await source.report(sinceSeconds, nowMs);
  } finally {
    source.close();
  }
}

/** The figures a tally of the whole batches gives (what the report computed when it read every batch). */
function tallyOf(batches: TelemetryBatch[], fromMs: number, toMs: number): NfsQueueingFigures {
  const tally = new NfsQueueTally(fromMs, toMs);
  for (const b of batches) tally.add(b);
  return tally.figures();
}

describe('operations report: NFS WRITE queueing from the NFS series', () => {
  it('over most of an hour, far beyond the whole-batch history, equals the tally of every batch; beyond the series, the limits say so', async () => {
    await redis().flushall();
    const telemetry = new NodeTelemetryStore(redis());
    // long-1 has sent batches for 100 minutes (more than the series keeps); new-1 for 5.
    const sent = { 'long-1': Array.from({ length: 600 }, (_, k) => batch('long-1', k)), 'new-1': Array.from({ length: 30 }, (_, k) => batch('new-1', 570 + k)) };
    for (const [name, batches] of Object.entries(sent)) {
      await redis().zadd(keys.nodes, 0, name);
      for (const b of batches) await telemetry.record(b);
    }
    expect(await redis().llen(keys.nodeTelemetryHistory('long-1'))).toBe(TELEMETRY_HISTORY_CAP);
    const nowMs = T0 + 599 * STEP_MS + 5_000;
    const all = [...sent['long-1'], ...sent['new-1']];

    // 50 minutes: 300 batches of long-1, inside its series but over four times its whole-batch history.
    const fromMs = nowMs - 3_000_000;
    expect(sent['long-1'].filter((b) => b.time!.getTime() >= fromMs).length).toBeGreaterThan(4 * TELEMETRY_HISTORY_CAP);
    const hour = await report(3_000, nowMs);
    const expected = tallyOf(all, fromMs, nowMs);
    expect(expected.samples).toBeGreaterThan(500);
    expect(hour.nfs).toEqual(expected);
    expect(hour.nfs?.coveredFrom?.getTime()).toBe(T0 + 300 * STEP_MS);
    expect(hour.limits.filter((l) => l.startsWith('NFS'))).toEqual([]);

    // Two hours: long-1's series holds its last 360 batches only; new-1's holds all it sent.
    const twoHours = await report(7_200, nowMs);
    const kept = [...sent['long-1'].slice(-NFS_WRITE_SERIES_CAP), ...sent['new-1']];
    expect(twoHours.nfs).toEqual(tallyOf(kept, nowMs - 7_200_000, nowMs));
    expect(twoHours.nfs?.coveredFrom?.getTime()).toBe(T0 + (600 - NFS_WRITE_SERIES_CAP) * STEP_MS);
    expect(twoHours.limits.filter((l) => l.startsWith('NFS'))).toEqual([
      `NFS queueing: 1 node(s) keep the NFS WRITE figures of only their last ${NFS_WRITE_SERIES_CAP} telemetry batches, so it covers less than the window (see covered_from)`,
    ]);
  });
});
