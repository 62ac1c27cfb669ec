// The detector's storage against a real redis-server: reading only the telemetry that arrived
// since a node's cursor, and a window committed in one transaction (state, cursors, results,
// and exactly the XIDs and operator decisions it consumed).
import { describe, expect, it } from 'vitest';
import { GetClusterHealthResponse, NodeHealth, TelemetryBatch, XidEvent } from '@gantry/proto';
import { useRedis } from './redis-fixture.js';
import { NodeTelemetryStore } from '../src/node-telemetry.js';
import { HealthStore } from '../src/health.js';

const redisOf = useRedis();

const T0 = Date.UTC(2026, 11, 2, 12, 0, 0);

describe('NodeTelemetryStore.since', () => {
  it('returns the batches after the cursor, oldest first, across history pages, bounded', async () => {
    const store = new NodeTelemetryStore(redisOf());
    for (let i = 1; i <= 30; i++) await store.record(TelemetryBatch.create({ node: 'n1', seq: i, time: new Date(T0 + i * 1000) }));
    const seqs = async (after: number, max?: number) => (await store.since('n1', T0 + after * 1000, max)).map((b) => b.seq);
    expect(await seqs(27)).toEqual([28, 29, 30]);
    expect(await seqs(30)).toEqual([]);
    expect(await seqs(5)).toEqual(Array.from({ length: 25 }, (_, i) => i + 6));
    expect(await seqs(0, 4)).toEqual([27, 28, 29, 30]);
    expect(await store.since('nobody', 0)).toEqual([]);
  });
});

describe('HealthStore', () => {
  it('commits a window atomically and consumes exactly what it evaluated', async () => {
    const store = new HealthStore(redisOf());
    for (const xid of [79, 48, 94]) await store.queueXid(XidEvent.create({ node: 'n1', xid }));
    await store.queueOperator({ node: 'n1', action: 'release', reason: 'swapped' });
    const xids = await store.pendingXids();
    expect(xids.map((x) => x.xid)).toEqual([79, 48, 94]);
    // One more arrives while the window is evaluated: it stays for the next one.
    await store.queueXid(XidEvent.create({ node: 'n2', xid: 13 }));
    await store.commit({
      stateJson: '{"version":1}', cursors: new Map([['n1', T0]]), xidsConsumed: xids.length, operatorConsumed: 1,
      nodes: [NodeHealth.create({ node: 'n1', status: 'SUSPECT', score: 5 })], removedNodes: [],
      cluster: GetClusterHealthResponse.create({ nodesEvaluated: 1, evaluatedAt: new Date(T0) }),
    });
    expect((await store.pendingXids()).map((x) => x.xid)).toEqual([13]);
    expect(await store.pendingOperator()).toEqual([]);
    const loaded = await store.load();
    expect(loaded.stateJson).toBe('{"version":1}');
    expect(loaded.cursors.get('n1')).toBe(T0);
    expect(await store.nodeHealth('n1')).toMatchObject({ status: 'SUSPECT', score: 5 });
    expect((await store.cluster())?.nodesEvaluated).toBe(1);
  });
});
