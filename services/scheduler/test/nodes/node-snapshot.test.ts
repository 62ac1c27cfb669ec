// The scheduling pass's node copy against a real redis-server: after the first listing it
// re-reads only the nodes the node change stream names (a record's commit, a job's GPU claims
// and releases, released GPUs), reads the same as a fresh listing after every kind of write,
// and lists everything again after a gap in the capped stream or a reset (even one that
// comes while a read is in flight).
import { beforeEach, describe, expect, it } from 'vitest';
import { GpuDevice, Job, JobSpec, JobState, Node, NodeState, RankPlacement } from '@gantry/proto';
import { JobStore, NodeStore, allocationOwner, keys, type NodeRecord } from '@gantry/store';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';
import { NodeSnapshot } from '../../src/nodes/node-snapshot.js';
import { schedule } from '../../src/jobs/lifecycle.js';

const redis = useRedis();

const names = ['ns-a', 'ns-b', 'ns-c', 'ns-d'];

/** What a fresh listing shows of every node: name, state, revision and the GPUs held (by whom). */
const view = (recs: NodeRecord[]) => recs.map((r) => ({ name: r.node.name, state: r.node.state, rev: r.rev, held: r.allocations.map((a) => `${a.gpuIndex}:${a.jobId}`) }));

async function register(store: NodeStore, name: string): Promise<NodeRecord> {
  return store.commit({ prev: undefined, next: Node.create({ name, state: NodeState.NODE_STATE_READY, gpus: [0, 1].map((index) => GpuDevice.create({ index })) }), reason: 'registered', instanceId: name });
}

/** Places a pending job on `node` (both GPUs) through the job commit, as a pass does. */
async function place(jobs: JobStore, id: string, node: string): Promise<void> {
  const prev = (await jobs.submit(Job.create({ id, createdAt: new Date(), spec: JobSpec.create({ tenant: 't', nodes: 1, gpusPerNode: 2, command: ['true'] }) }), '')).job;
  const next = schedule(prev, [RankPlacement.create({ rank: 0, node, gpuIndices: [0, 1] })], new Date(), undefined);
  await jobs.commit({ prev: { job: prev, rev: 1 }, next, reason: 'placed', claims: [0, 1].map((gpu) => ({ node, gpu, owner: allocationOwner(id, 1, 0) })) });
}

describe('NodeSnapshot', () => {
  beforeEach(async () => {
    await redis().flushall();
  });

  it('re-reads only the nodes written since its last read, and reads what a fresh listing reads', async () => {
    const store = new NodeStore(redis());
    const jobs = new JobStore(redis());
    const recs = new Map<string, NodeRecord>();
    for (const n of names) recs.set(n, await register(store, n));
    const snapshot = new NodeSnapshot(store);
    const fresh = async () => view(await new NodeStore(redis()).list());

    expect(view(await snapshot.read())).toEqual(await fresh());
    expect(snapshot.lastRead).toBe(4);
    expect(view(await snapshot.read())).toEqual(await fresh());
    expect(snapshot.lastRead).toBe(0);

    // A record's commit (cordon), a job's claims, then the job's end with its releases.
    await store.commit({ prev: recs.get('ns-b')!, next: { ...recs.get('ns-b')!.node, cordoned: true }, reason: 'cordoned', event: true });
    await place(jobs, 'snap-1', 'ns-c');
    expect(view(await snapshot.read())).toEqual(await fresh());
    expect(snapshot.lastRead).toBe(2);
    expect((await snapshot.read()).find((r) => r.node.name === 'ns-c')!.allocations.map((a) => a.jobId)).toEqual(['snap-1', 'snap-1']);

    const [placed] = await jobs.getMany(['snap-1']);
    await jobs.commit({ prev: placed!, next: { ...placed!.job, state: JobState.JOB_STATE_CANCELLED }, reason: 'cancelled', releases: [0, 1].map((gpu) => ({ node: 'ns-c', gpu, owner: allocationOwner('snap-1', 1, 0) })) });
    expect(view(await snapshot.read())).toEqual(await fresh());
    expect(snapshot.lastRead).toBe(1);

    // GPUs released on their own (a rank's exit after its job ended), and a heartbeat (not a change).
    await place(jobs, 'snap-2', 'ns-d');
    await snapshot.read();
    await redis().set(keys.leaderEpoch, '7'); // releases are the leader's
    expect(await store.releaseGpus([0, 1].map((gpu) => ({ node: 'ns-d', gpu, owner: allocationOwner('snap-2', 1, 0) })), 7)).toBe(2);
    await store.recordHeartbeats([{ name: 'ns-a', instanceId: 'ns-a' }], Date.now(), new Map());
    expect(view(await snapshot.read())).toEqual(await fresh());
    expect(snapshot.lastRead).toBe(1);
  });

  it('places a new node in name order, and lists everything after a gap in the stream or a reset', async () => {
    const store = new NodeStore(redis());
    for (const n of ['ns-b', 'ns-d']) await register(store, n);
    const snapshot = new NodeSnapshot(store);
    await snapshot.read();
    await register(store, 'ns-a');
    await register(store, 'ns-c');
    expect((await snapshot.read()).map((r) => r.node.name)).toEqual(['ns-a', 'ns-b', 'ns-c', 'ns-d']);
    expect(snapshot.lastRead).toBe(2);

    // The cap trimmed entries the copy had not read: it cannot know what changed.
    const [d] = await store.getMany(['ns-d']);
    await store.commit({ prev: d!, next: { ...d!.node, cordoned: true }, reason: 'cordoned', event: true });
    await redis().xtrim(keys.nodeChanges, 'MAXLEN', 0);
    await register(store, 'ns-e');
    expect((await snapshot.read()).map((r) => [r.node.name, r.node.cordoned])).toEqual([['ns-a', false], ['ns-b', false], ['ns-c', false], ['ns-d', true], ['ns-e', false]]);
    expect(snapshot.lastRead).toBe(5);

    snapshot.reset();
    await snapshot.read();
    expect(snapshot.lastRead).toBe(5);
    // A read in flight when leadership changes keeps nothing: the next read lists everything.
    const inFlight = snapshot.read();
    snapshot.reset();
    // Its caller (a pass of the leadership that ended) still gets every node it read.
    expect((await inFlight).map((r) => r.node.name)).toEqual(['ns-a', 'ns-b', 'ns-c', 'ns-d', 'ns-e']);
    await snapshot.read();
    expect(snapshot.lastRead).toBe(5);
  });
});
