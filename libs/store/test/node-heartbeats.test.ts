// NodeStore.recordHeartbeats against a real redis-server: one script call reads each heartbeat's
// node and records its time only when the node is registered to the heartbeat's agent instance
// (or to none), in the record and in the index LOST detection reads; another instance's
// heartbeat and an unknown node's leave both as they were.
import { beforeEach, describe, expect, it } from 'vitest';
import { Node, NodeState } from '@gantry/proto';
import { useRedis } from './redis-fixture.js';
import { NodeStore, type ParsedNode } from '../src/nodes.js';
import { keys } from '../src/keys.js';

const redisOf = useRedis();

describe('NodeStore.recordHeartbeats', () => {
  beforeEach(async () => {
    await redisOf().flushall();
  });

  it('records the registered instance\'s heartbeats (and any for a node registered without one), not another instance\'s nor an unknown node\'s', async () => {
    const store = new NodeStore(redisOf());
    await store.commit({ prev: undefined, next: Node.create({ name: 'hb-a', state: NodeState.NODE_STATE_READY }), reason: 'registered', instanceId: 'ia', heartbeatMs: 1_000 });
    await store.commit({ prev: undefined, next: Node.create({ name: 'hb-b', state: NodeState.NODE_STATE_READY }), reason: 'registered', instanceId: 'ib', heartbeatMs: 1_000 });
    await store.commit({ prev: undefined, next: Node.create({ name: 'hb-c', state: NodeState.NODE_STATE_READY }), reason: 'registered', heartbeatMs: 1_000 });
    const parsed = new Map<string, ParsedNode>();
    const recs = await store.recordHeartbeats([
      { name: 'hb-a', instanceId: 'ia' },
      { name: 'hb-b', instanceId: 'not-ib' },
      { name: 'hb-c', instanceId: 'anything' },
      { name: 'hb-unknown', instanceId: 'x' },
      { name: 'hb-b', instanceId: 'ib' },
    ], 5_000, parsed);
    expect(recs.map((r) => r?.node.name)).toEqual(['hb-a', 'hb-b', 'hb-c', undefined, 'hb-b']);
    expect(recs.map((r) => r?.instanceId)).toEqual(['ia', 'ib', '', undefined, 'ib']);
    // The rejected heartbeat read the time as it was; the same node's own heartbeat after it in the call recorded its time.
    expect(recs.map((r) => r?.heartbeatMs)).toEqual([5_000, 1_000, 5_000, undefined, 5_000]);
    expect(await redisOf().zscore(keys.heartbeats, 'hb-a')).toBe('5000');
    expect(await redisOf().zscore(keys.heartbeats, 'hb-c')).toBe('5000');
    expect(await redisOf().zscore(keys.heartbeats, 'hb-unknown')).toBeNull();
    expect(await redisOf().exists(keys.node('hb-unknown'))).toBe(0);

    const onlyOther = await store.recordHeartbeats([{ name: 'hb-b', instanceId: 'not-ib' }], 9_000, parsed);
    expect(onlyOther[0]?.heartbeatMs).toBe(5_000);
    expect(await redisOf().zscore(keys.heartbeats, 'hb-b')).toBe('5000');
    expect((await store.get('hb-b'))?.heartbeatMs).toBe(5_000);
    expect((await store.get('hb-a'))?.heartbeatMs).toBe(5_000);
    // Parsed once: the records came back whole from the cache on the second call.
    expect(parsed.get('hb-b')?.node.name).toBe('hb-b');
    expect(onlyOther[0]?.node.state).toBe(NodeState.NODE_STATE_READY);
  });

  it('records heartbeats of more nodes than one script call takes', async () => {
    const store = new NodeStore(redisOf());
    const names = Array.from({ length: 600 }, (_, i) => `hb-many-${i}`);
    for (const name of names) await store.commit({ prev: undefined, next: Node.create({ name, state: NodeState.NODE_STATE_READY }), reason: 'registered', instanceId: name });
    const recs = await store.recordHeartbeats(names.map((name) => ({ name, instanceId: name })), 7_000, new Map());
    expect(recs.map((r) => r?.node.name)).toEqual(names);
    expect(new Set(await redisOf().zrangebyscore(keys.heartbeats, 7_000, 7_000))).toEqual(new Set(names));
  });
});
