// NodeStore.list() against a real redis-server: a record's JSON is parsed again only after its
// revision moved (or the record was written anew for another agent instance); removed nodes go.
import { beforeEach, describe, expect, it } from 'vitest';
import { Node, NodeState } from '@gantry/proto';
import { useRedis } from './redis-fixture.js';
import { NodeStore } from '../src/nodes.js';
import { keys } from '../src/keys.js';

const redisOf = useRedis();

/** Changes the stored JSON without the revision: what list() shows tells whether it re-read it. */
async function relabelInPlace(name: string, label: string): Promise<void> {
  const json = JSON.parse((await redisOf().hget(keys.node(name), 'node'))!) as { labels?: Record<string, string> };
  json.labels = { mark: label };
  await redisOf().hset(keys.node(name), 'node', JSON.stringify(json));
}

describe('NodeStore.list', () => {
  beforeEach(async () => {
    await redisOf().flushall();
  });

  it('reuses a parsed record while its revision and instance stay, and parses it again when either moves', async () => {
    const store = new NodeStore(redisOf());
    const a = await store.commit({ prev: undefined, next: Node.create({ name: 'list-a', state: NodeState.NODE_STATE_READY, labels: { mark: 'one' } }), reason: 'registered', instanceId: 'i1', instanceSinceMs: 1 });
    expect((await store.list()).map((r) => r.node.labels.mark)).toEqual(['one']);
    await relabelInPlace('list-a', 'unseen');
    expect((await store.list()).map((r) => r.node.labels.mark)).toEqual(['one']);
    // A commit moves the revision: read again.
    await store.commit({ prev: a, next: Node.create({ ...a.node, labels: { mark: 'two' } }), reason: 'relabelled' });
    expect((await store.list()).map((r) => r.node.labels.mark)).toEqual(['two']);
    // Written anew at the same revision (Redis lost it) for another agent instance: read again.
    await redisOf().del(keys.node('list-a'));
    const b = await store.commit({ prev: undefined, next: Node.create({ name: 'list-a', state: NodeState.NODE_STATE_READY, labels: { mark: 'three' } }), reason: 'registered', instanceId: 'i2', instanceSinceMs: 2 });
    await store.commit({ prev: b, next: Node.create({ ...b.node, labels: { mark: 'four' } }), reason: 'relabelled' });
    // Revision 2 again, as the parsed copy: the instance tells them apart.
    expect((await store.list()).map((r) => [r.rev, r.node.labels.mark])).toEqual([[2, 'four']]);
  });

  it('drops nodes that left the index', async () => {
    const store = new NodeStore(redisOf());
    for (const name of ['list-b', 'list-c']) await store.commit({ prev: undefined, next: Node.create({ name, state: NodeState.NODE_STATE_READY }), reason: 'registered', instanceId: name });
    expect((await store.list()).map((r) => r.node.name)).toEqual(['list-b', 'list-c']);
    await redisOf().zrem(keys.nodes, 'list-b');
    expect((await store.list()).map((r) => r.node.name)).toEqual(['list-c']);
  });
});
