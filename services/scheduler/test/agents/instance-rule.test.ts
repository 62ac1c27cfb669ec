// Which agent process the scheduler believes for a node's rank events, XIDs and telemetry:
// the registration as the node store records it (commit-node.lua keeps the instance before
// the current one and when the current one started, in one step), judged by the message guard.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Node, NodeState } from '@gantry/proto';
import { NodeStore, type NodeRecord } from '@gantry/store';
import { AgentMessageGuard } from '../../src/agents/message-guard.js';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';

const redis = useRedis();
const log = pino({ level: 'silent' });

async function register(store: NodeStore, prev: NodeRecord | undefined, instanceId: string, sinceMs: number): Promise<NodeRecord> {
  return store.commit({ prev, next: Node.create({ name: 'n-instances', state: NodeState.NODE_STATE_READY }), reason: 'registered', instanceId, instanceSinceMs: sinceMs });
}

describe('the registered agent instance and the one before it', () => {
  it('keeps the previous instance and the current one\'s start across re-registrations of the same process', async () => {
    const store = new NodeStore(redis());
    let rec = await register(store, undefined, 'agent-a', 1_000);
    expect(await store.instances('n-instances')).toEqual({ current: 'agent-a', previous: '', sinceMs: 1_000 });
    rec = await register(store, rec, 'agent-b', 5_000);
    expect(await store.instances('n-instances')).toEqual({ current: 'agent-b', previous: 'agent-a', sinceMs: 5_000 });
    // A reconnect of the same process registers again: nothing about the instances changes.
    await register(store, rec, 'agent-b', 9_000);
    expect(await store.instances('n-instances')).toEqual({ current: 'agent-b', previous: 'agent-a', sinceMs: 5_000 });
    const [read] = await store.getMany(['n-instances']);
    expect({ id: read!.instanceId, previous: read!.previousInstanceId, since: read!.instanceSinceMs }).toEqual({ id: 'agent-b', previous: 'agent-a', since: 5_000 });
    expect(await store.instances('n-unknown')).toBeUndefined();
  });

  it('believes the current instance, the previous one for what it stamped before the current one started, and nothing else', async () => {
    const metrics = new Registry();
    const guard = AgentMessageGuard.of(metrics, log);
    const instances = { current: 'agent-b', previous: 'agent-a', sinceMs: 5_000 };
    expect(guard.fromInstance('rank-event', 'n', instances, 'agent-b', 100)).toBe(true);
    expect(guard.fromInstance('telemetry', 'n', instances, 'agent-b', undefined)).toBe(true);
    // Buffered by the previous process before this one started: believed.
    expect(guard.fromInstance('telemetry', 'n', instances, 'agent-a', 4_999)).toBe(true);
    expect(guard.fromInstance('host-event', 'n', instances, 'agent-a', 1_000)).toBe(true);
    // The previous process still talking after its replacement started, or without a stamp.
    expect(guard.fromInstance('telemetry', 'n', instances, 'agent-a', 5_000)).toBe(false);
    expect(guard.fromInstance('rank-event', 'n', instances, 'agent-a', undefined)).toBe(false);
    expect(await guard.count('telemetry', 'stale-instance')).toBe(1);
    expect(await guard.count('rank-event', 'stale-instance')).toBe(1);
    // Unknown, empty, an unregistered node, and a start time nobody recorded.
    expect(guard.fromInstance('rank-event', 'n', instances, 'agent-z', 100)).toBe(false);
    expect(guard.fromInstance('rank-event', 'n', instances, '', 100)).toBe(false);
    expect(guard.fromInstance('host-event', 'n', undefined, 'agent-b', 100)).toBe(false);
    expect(guard.fromInstance('host-event', 'n', { ...instances, sinceMs: 0 }, 'agent-a', 100)).toBe(false);
    expect(await guard.count('rank-event', 'instance-mismatch')).toBe(2);
    expect(await guard.count('host-event', 'instance-mismatch')).toBe(1);
    expect(await guard.count('host-event', 'stale-instance')).toBe(1);
  });
});
