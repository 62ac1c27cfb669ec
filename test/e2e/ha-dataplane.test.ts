// The HA data plane with real processes: a three-node NATS JetStream cluster (streams with 3
// replicas) and Redis primary + replica + three sentinels. kill -9 the NATS server the
// scheduler leader is connected to, then the Redis primary, each while a job runs: the job
// completes, every rank ran exactly once, its WatchJob history has no gap and no GPU stays
// claimed.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { GantryClient } from '@gantry/sdk';
import { JobState, type Job } from '@gantry/proto';
import { streamFill, streams } from '@gantry/bus';
import { keys } from '@gantry/store';
import { TestStack, eventually } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';
import { markerCommand, orphanClaims, readMarkers, watchHistoryGaps } from '../harness/ha-checks.js';

let stack: TestStack;
let client: GantryClient;
let marker: string;

beforeAll(async () => {
  stack = await new TestStack({ ha: true, agents: 2, schedulers: 1, leaseTtlMs: 3_000 }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 40 } });
  marker = join(stack.workDir, 'marker.txt');
}, 90_000);

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

async function runsToEnd(id: string): Promise<Job> {
  const job = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED], 60_000);
  expect(job.state).toBe(JobState.JOB_STATE_SUCCEEDED);
  expect(job.attempt).toBe(1);
  expect(await watchHistoryGaps(client, id, job.state)).toEqual([]);
  return job;
}

function ranRankOnce(id: string, ranks: number): void {
  const { executions, duplicates } = readMarkers(marker);
  expect(duplicates).toEqual([]);
  for (let r = 0; r < ranks; r++) expect(executions.get(`${id} ${r}`)?.attempts).toEqual([1]);
}

describe('HA data plane', () => {
  it('streams are replicated three times and the agent-events stream refuses rather than drops', async () => {
    const nc = await connect(stack.natsOptions());
    try {
      const fill = await streamFill(nc);
      expect(fill.filter((f) => f.replicas !== 3).map((f) => f.stream)).toEqual([]);
      const ev = fill.find((f) => f.stream === streams.agentEvents.name)!;
      expect(ev).toMatchObject({ discard: 'new', retention: 'workqueue', maxAgeSec: 0 });
      expect(ev.leader).toBeTruthy();
      expect(ev.peers).toHaveLength(2);
      // Durable consumers inherit the stream's three replicas (once the leader created them).
      await eventually('the scheduler consumers replicated', async () => {
        const m = stack.natsCluster!.members[0]!;
        const jsz = (await (await fetch(`http://127.0.0.1:${m.httpPort}/jsz?consumers=true&config=true`)).json()) as { account_details?: { stream_detail?: { name: string; consumer_detail?: { name: string; cluster?: { replicas?: unknown[] } }[] }[] }[] };
        const consumers = (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []).filter((s) => s.name === streams.agentEvents.name).flatMap((s) => s.consumer_detail ?? []);
        return consumers.length >= 2 && consumers.every((c) => c.cluster?.replicas?.length === 2) ? true : undefined;
      }, 20_000);
    } finally {
      await nc.close();
    }
  });

  it('kill -9 of the NATS server the scheduler leader uses: the running job completes, each rank once', async () => {
    const cluster = stack.natsCluster!;
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, command: markerCommand(marker, 4) });
    await eventually('RUNNING', async () => ((await client.getJob(job!.id)).state === JobState.JOB_STATE_RUNNING ? true : undefined), 30_000);
    const victim = await eventually('the scheduler connection', () => cluster.memberOf('scheduler scheduler-0'));
    await victim.kill();
    try {
      await runsToEnd(job!.id);
      ranRankOnce(job!.id, 2);
      // New work is placed and run while one server of three is down.
      const { job: next } = await client.submitJob({ nodes: 1, gpusPerNode: 8, command: markerCommand(marker, 0) });
      await runsToEnd(next!.id);
      ranRankOnce(next!.id, 1);
    } finally {
      await victim.start();
      await cluster.healthy(30_000);
    }
    expect(await orphanClaims(stack.redis)).toEqual([]);
  });

  it('kill -9 of the Redis primary: Sentinel promotes the replica, the scheduler goes on, the job completes exactly once', async () => {
    const ha = stack.redisHa!;
    const epochBefore = Number(await stack.redis.get(keys.leaderEpoch));
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, command: markerCommand(marker, 4) });
    await eventually('RUNNING', async () => ((await client.getJob(job!.id)).state === JobState.JOB_STATE_RUNNING ? true : undefined), 30_000);
    const old = await ha.primary();
    const killedAt = Date.now();
    await old.kill();
    const promoted = await eventually('a new primary', async () => { const p = await ha.primary().catch(() => undefined); return p && p !== old ? p : undefined; }, 20_000);
    expect(promoted).not.toBe(old);
    const failoverMs = Date.now() - killedAt;
    // The old primary comes back as a replica (with one replica, commits wait for it: REDIS_WAIT_REPLICAS=1).
    await ha.restartAsReplica(old);
    await runsToEnd(job!.id);
    ranRankOnce(job!.id, 2);
    // The fencing epoch never went backwards across the failover.
    expect(Number(await stack.redis.get(keys.leaderEpoch))).toBeGreaterThanOrEqual(epochBefore);
    const { job: next } = await client.submitJob({ nodes: 2, gpusPerNode: 4, command: markerCommand(marker, 0) });
    await runsToEnd(next!.id);
    ranRankOnce(next!.id, 2);
    await ha.healthy(30_000);
    expect(await orphanClaims(stack.redis)).toEqual([]);
    console.log(`redis failover: new primary named by the sentinels ${failoverMs} ms after kill -9`);
  });
});
