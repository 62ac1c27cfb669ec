// The checkpoint service's discovery side against real NATS (JetStream) and Redis: reports
// published as an agent publishes them are committed by manifest, a broken committed one turns
// CORRUPT and is no longer offered for resume, a duplicate message id is recorded once, and
// retention asks the reporting agent (a fake one here) to delete, dry run unless enabled. Only
// the node the job events placed node rank 0 of the report's attempt on may report (any node
// of the attempt for explicit reports); every test job is placed so first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, Metadata } from '@grpc/grpc-js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import {
  CheckpointDeleteReply, CheckpointDeleteRequest, CheckpointFormat, CheckpointReport, CheckpointServiceClient, CheckpointState, Job, JobEvent, JobState,
  type Checkpoint, type CheckpointEvent, type CheckpointRetention,
} from '@gantry/proto';
import { CheckpointStore } from '@gantry/store';
import { decode, encode, ensureStreams, subjects } from '@gantry/bus';
import { startNats, startRedis, type Server } from '../../../test/harness/infra.js';
import { startCheckpointService, type CheckpointServiceHandle } from '../src/server.js';
import { planRetention } from '../src/retention.js';

let redis: Server;
let nats: Server;
let nc: NatsConnection;
let service: CheckpointServiceHandle;
let client: CheckpointServiceClient;
let store: CheckpointStore;
let storeRedis: Redis;
let seq = 0;
const deletes: CheckpointDeleteRequest[] = [];

const call = <T>(method: 'listCheckpoints' | 'getLatestCheckpoint' | 'listCheckpointEvents', req: object): Promise<T> =>
  new Promise((resolve, reject) => {
    (client[method] as unknown as (r: object, m: Metadata, cb: (e: Error | null, v: T) => void) => void).call(client, req, new Metadata(), (e, v) => (e ? reject(e) : resolve(v)));
  });
const list = async (jobId: string) => (await call<{ checkpoints: Checkpoint[] }>('listCheckpoints', { jobId })).checkpoints;
const latest = async (jobId: string) => (await call<{ checkpoint?: Checkpoint }>('getLatestCheckpoint', { jobId })).checkpoint;
const events = async (jobId: string) => (await call<{ events: CheckpointEvent[] }>('listCheckpointEvents', { jobId })).events;

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function report(jobId: string, step: number, status: string, extra: Partial<CheckpointReport> = {}): CheckpointReport {
  return CheckpointReport.create({
    jobId, attempt: 1, node: 'node-0', dir: `/ckpt/${jobId}`, path: `/ckpt/${jobId}/step-${step}`, name: `step-${step}`, step, format: CheckpointFormat.CHECKPOINT_FORMAT_DCP,
    status, reasons: status === 'COMPLETE' ? [] : [`${status} because`], files: [{ path: '.metadata', size: 10, sha256: '' }, { path: '__0_0.distcp', size: 90, sha256: '' }], totalBytes: 100,
    seenAt: new Date(), source: 'discovery', ...extra,
  });
}

const publish = (r: CheckpointReport, id = `${r.jobId}-${r.path}-${r.status}-${++seq}`) => jetstream(nc).publish(subjects.checkpointReport(r.node, r.jobId), encode(CheckpointReport, r), { msgID: id });

/** The scheduler's event placing `attempt` of the job on `nodes` (node rank i on nodes[i]), as the relay publishes it. */
function placedEvent(jobId: string, nodes: string[], attempt = 1): JobEvent {
  const job = Job.create({
    id: jobId, state: JobState.JOB_STATE_SCHEDULED, attempt, spec: { checkpoint: { dir: `/ckpt/${jobId}` } },
    attempts: Array.from({ length: attempt }, (_, i) => ({ number: i + 1, placement: nodes.map((node, rank) => ({ rank, node })) })),
  });
  return JobEvent.create({ eventId: `placed-${jobId}-${attempt}`, jobId, fromState: JobState.JOB_STATE_PENDING, toState: JobState.JOB_STATE_SCHEDULED, attempt, time: new Date(), job });
}
const publishEvent = (ev: JobEvent) => jetstream(nc).publish(subjects.jobEvent(ev.jobId), encode(JobEvent, ev), { msgID: ev.eventId });

/** Places the job's attempt and waits until the service has recorded it (so its reports are handled in order). */
async function place(jobId: string, nodes = ['node-0'], attempt = 1): Promise<void> {
  await publishEvent(placedEvent(jobId, nodes, attempt));
  await until(`${jobId}'s placement recorded`, async () => (await store.placement(jobId, attempt)) !== undefined);
}

/** gantry_checkpoint_reports_dropped_total for a reason (0 when never counted). */
async function dropped(reason: string): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
  const line = metrics.split('\n').find((l) => l.startsWith(`gantry_checkpoint_reports_dropped_total{reason="${reason}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

beforeAll(async () => {
  [redis, nats] = await Promise.all([startRedis(), startNats()]);
  nc = await connect({ servers: nats.url });
  await ensureStreams(nc);
  // A fake agent on node-0: confirms every deletion (or dry run).
  nc.subscribe(subjects.checkpointDelete('node-0'), { callback: (_e, m) => {
    const req = decode(CheckpointDeleteRequest, m.data, 'CheckpointDeleteRequest');
    deletes.push(req);
    m.respond(encode(CheckpointDeleteReply, req.dryRun ? { ok: true, deleted: false, message: `dry run: would delete ${req.path}` } : { ok: true, deleted: true, message: `deleted ${req.path}` }));
  } });
  service = await startCheckpointService({
    REDIS_URL: redis.url, NATS_URL: nats.url, CHECKPOINT_GRPC_PORT: '0', METRICS_PORT: '0', BIND_HOST: '127.0.0.1', LOG_LEVEL: 'silent', CHECKPOINT_RECORD_TTL_SECONDS: '120',
    CHECKPOINT_REPORT_PLACEMENT_WAIT_MS: '3000',
  });
  storeRedis = new Redis(redis.url);
  store = new CheckpointStore(storeRedis);
  client = new CheckpointServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  storeRedis?.disconnect();
  client?.close();
  await service?.stop();
  await nc?.close();
  await Promise.all([redis?.stop(), nats?.stop()]);
});

describe('checkpoint service: discovery reports', () => {
  it('commits by manifest without any client call; a duplicate message is recorded once; a committed one that breaks is CORRUPT and resume falls back', async () => {
    const job = `disc-${process.pid}-1`;
    await place(job);
    await publish(report(job, 100, 'INCOMPLETE'));
    await until('IN_PROGRESS', async () => (await list(job))[0]?.state === CheckpointState.CHECKPOINT_STATE_WRITING);
    await publish(report(job, 100, 'COMPLETE'), 'same-id');
    await publish(report(job, 100, 'COMPLETE'), 'same-id');
    await publish(report(job, 200, 'COMPLETE'));
    await until('two committed', async () => (await list(job)).filter((c) => c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED).length === 2);
    expect((await latest(job))?.step).toBe(200);
    const c = (await list(job))[0]!;
    expect(c).toMatchObject({ step: 100, format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, bytes: 100, source: 'discovery', node: 'node-0', reason: '' });
    expect(c.files.map((f) => f.path)).toEqual(['.metadata', '__0_0.distcp']);
    await publish(report(job, 200, 'CORRUPT', { reasons: ['__0_0.distcp is missing'] }));
    await until('CORRUPT', async () => (await list(job))[1]?.state === CheckpointState.CHECKPOINT_STATE_CORRUPT);
    expect((await list(job))[1]!.reason).toBe('failed the check after commit: __0_0.distcp is missing');
    expect((await latest(job))?.step).toBe(100);
    expect((await events(job)).map((e) => e.kind)).toEqual(['corrupt', 'committed', 'committed', 'in-progress']);
  });

  it('drops a report whose payload names another node or job than its subject, or that names no node, and keeps the sender\'s own', async () => {
    const job = `disc-${process.pid}-bind`;
    await place(job);
    const r = report(job, 300, 'COMPLETE');
    const js = jetstream(nc);
    // node-1 reporting in node-0's name, the right node for another job, the old per-job form.
    await js.publish(subjects.checkpointReport('node-1', job), encode(CheckpointReport, r), { msgID: `bind-1-${process.pid}` });
    await js.publish(subjects.checkpointReport('node-0', `${job}-other`), encode(CheckpointReport, r), { msgID: `bind-2-${process.pid}` });
    await js.publish(`gantry.v1.checkpoint.report.${job}`, encode(CheckpointReport, r), { msgID: `bind-3-${process.pid}` });
    // Then its own report, on its own subject: recorded (the consumer is in order, so the
    // three above were handled first).
    await publish(report(job, 400, 'COMPLETE'));
    await until('own report committed', async () => (await list(job)).some((c) => c.step === 400));
    expect((await list(job)).map((c) => c.step)).toEqual([400]);
    const metrics = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    for (const reason of ['node-mismatch', 'job-mismatch', 'unbound-subject']) expect(metrics).toMatch(new RegExp(`gantry_checkpoint_reports_dropped_total\\{reason="${reason}"[^}]*\\} 1\\n`));
  });

  it('GetLatestCheckpoint has the agent re-check the newest committed one first: one that broke since is CORRUPT and the previous is offered', async () => {
    const job = `disc-${process.pid}-6`;
    await place(job, ['node-v']);
    const asked: string[] = [];
    const sub = nc.subscribe(subjects.checkpointVerify('node-v'), { callback: (_e, m) => {
      const req = decode(CheckpointReport, m.data, 'CheckpointReport');
      asked.push(req.path);
      const broken = req.path.endsWith('step-200');
      m.respond(encode(CheckpointReport, { ...req, status: broken ? 'CORRUPT' : 'COMPLETE', reasons: broken ? ['__0_0.distcp is missing'] : [] }));
    } });
    try {
      for (const step of [100, 200]) await publish(report(job, step, 'COMPLETE', { node: 'node-v' }));
      await until('two committed', async () => (await list(job)).filter((c) => c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED).length === 2);
      expect((await latest(job))?.step).toBe(100);
      expect(asked).toEqual([`/ckpt/${job}/step-200`, `/ckpt/${job}/step-100`]);
      const bad = (await list(job)).find((c) => c.step === 200)!;
      expect(bad).toMatchObject({ state: CheckpointState.CHECKPOINT_STATE_CORRUPT, reason: 'failed the check after commit: __0_0.distcp is missing' });
    } finally {
      sub.unsubscribe();
    }
  });

  it('drops reports whose path is outside their directory', async () => {
    const job = `disc-${process.pid}-2`;
    await place(job);
    await publish(report(job, 1, 'COMPLETE', { path: '/etc/step-1' }));
    await publish(report(job, 2, 'COMPLETE'));
    await until('the valid one', async () => (await list(job)).length === 1);
    expect((await list(job)).map((c) => c.step)).toEqual([2]);
  });

  it('retention: keep_last and keep_every, a dry run recorded once, real deletions marked DELETED with an event', async () => {
    const dry = `disc-${process.pid}-3`;
    const retention: CheckpointRetention = { keepLast: 1, keepEvery: 200, gcGraceSeconds: 0, delete: false };
    await place(dry);
    for (const step of [100, 200, 300]) await publish(report(dry, step, 'COMPLETE', { retention }));
    await until('dry-run event', async () => (await events(dry)).find((e) => e.kind === 'delete-dry-run'));
    expect((await list(dry)).every((c) => c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED)).toBe(true);
    expect(deletes.filter((d) => d.jobId === dry).map((d) => [d.path, d.dryRun])).toEqual([[`/ckpt/${dry}/step-100`, true]]);

    const real = `disc-${process.pid}-4`;
    await place(real);
    for (const step of [100, 200, 300]) await publish(report(real, step, 'COMPLETE', { retention: { ...retention, delete: true } }));
    await until('DELETED', async () => (await list(real)).find((c) => c.state === CheckpointState.CHECKPOINT_STATE_DELETED));
    const states = (await list(real)).map((c) => [c.step, CheckpointState[c.state]]);
    expect(states).toEqual([[100, 'CHECKPOINT_STATE_DELETED'], [200, 'CHECKPOINT_STATE_COMMITTED'], [300, 'CHECKPOINT_STATE_COMMITTED']]);
    expect((await events(real)).find((e) => e.kind === 'deleted')).toMatchObject({ kind: 'deleted', path: `/ckpt/${real}/step-100`, message: expect.stringMatching(/not among the newest 1/) });
  });

  it('takes a report only from node rank 0\'s node of its attempt (an explicit one from any node of it), and drops and counts the rest', async () => {
    const job = `disc-${process.pid}-placed`;
    // Attempt 1 on node-0 (node rank 0) and node-1; attempt 2 on node-1 alone.
    await publishEvent(placedEvent(job, ['node-0', 'node-1'], 1));
    await publishEvent({ ...placedEvent(job, ['node-1'], 2), job: Job.create({ ...placedEvent(job, ['node-0', 'node-1'], 1).job, attempt: 2, attempts: [{ number: 1, placement: [{ rank: 0, node: 'node-0' }, { rank: 1, node: 'node-1' }] }, { number: 2, placement: [{ rank: 0, node: 'node-1' }] }] }) });
    await until('both attempts recorded', async () => (await store.placement(job, 2)) !== undefined);
    expect(await store.placement(job, 1)).toEqual(['node-0', 'node-1']);
    const before = { watcher: await dropped('not-watcher'), placed: await dropped('not-placed') };
    // node-1 runs node rank 1 of attempt 1: its discovery reports are not its to make; node-2 has no rank at all.
    await publish(report(job, 10, 'COMPLETE', { node: 'node-1' }));
    await publish(report(job, 11, 'COMPLETE', { node: 'node-2', source: 'explicit' }));
    // node-0 watched attempt 1, not attempt 2.
    await publish(report(job, 12, 'COMPLETE', { attempt: 2 }));
    // Allowed: node rank 0's host for attempt 1 and 2, and the training code on node rank 1's host.
    await publish(report(job, 20, 'COMPLETE'));
    await publish(report(job, 21, 'COMPLETE', { node: 'node-1', attempt: 2 }));
    await publish(report(job, 22, 'COMPLETE', { node: 'node-1', source: 'explicit' }));
    await until('the three allowed committed', async () => (await list(job)).length === 3);
    expect((await list(job)).map((c) => [c.step, c.attempt, c.node])).toEqual([[20, 1, 'node-0'], [21, 2, 'node-1'], [22, 1, 'node-1']]);
    expect(await dropped('not-watcher')).toBe(before.watcher + 2);
    expect(await dropped('not-placed')).toBe(before.placed + 1);
  });

  it('holds back a report that comes before the event placing its attempt; one for an attempt never placed is dropped after the wait', async () => {
    const job = `disc-${process.pid}-early`;
    await publish(report(job, 5, 'COMPLETE'));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await list(job)).toEqual([]);
    await publishEvent(placedEvent(job, ['node-0']));
    await until('committed once placed', async () => (await list(job))[0]?.state === CheckpointState.CHECKPOINT_STATE_COMMITTED);

    const ghost = `disc-${process.pid}-ghost`;
    const before = await dropped('unknown-attempt');
    await publish(report(ghost, 5, 'COMPLETE'));
    // CHECKPOINT_REPORT_PLACEMENT_WAIT_MS is 3 s here.
    await until('unknown-attempt counted', async () => (await dropped('unknown-attempt')) > before, 15_000);
    expect(await list(ghost)).toEqual([]);
    // Placed later than the wait: the dropped report stays dropped.
    await place(ghost);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await list(ghost)).toEqual([]);
  });

  it('an attempt that ended abandons its IN_PROGRESS checkpoints; a finished job\'s records expire, also the final save its last pass reports after the end', async () => {
    const job = `disc-${process.pid}-5`;
    await place(job);
    await publish(report(job, 10, 'INCOMPLETE'));
    await until('IN_PROGRESS', async () => (await list(job)).length === 1);
    const ev = JobEvent.create({ eventId: `e-${job}`, jobId: job, fromState: JobState.JOB_STATE_RUNNING, toState: JobState.JOB_STATE_FAILED, attempt: 1, time: new Date() });
    await jetstream(nc).publish(subjects.jobEvent(job), encode(JobEvent, ev), { msgID: ev.eventId });
    const c = await until('ABANDONED', async () => (await list(job)).find((x) => x.state === CheckpointState.CHECKPOINT_STATE_ABANDONED));
    expect(c.reason).toMatch(/attempt 1 ended \(JOB_STATE_FAILED\)/);
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    try {
      await until('a TTL', async () => (await r.ttl(`gantry:checkpoint:${c.id}`)) > 0);
      // The agent's last discovery pass comes after the final transition: a save it finds then
      // is committed (it may be resumed from by a retry) but expires with the rest.
      await publish(report(job, 20, 'COMPLETE', { attemptEnded: true }));
      const late = await until('the late save committed', async () => (await list(job)).find((x) => x.step === 20 && x.state === CheckpointState.CHECKPOINT_STATE_COMMITTED));
      const ttl = await r.ttl(`gantry:checkpoint:${late.id}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(120);
      expect(await r.hexists('gantry:checkpoints:last-commit', job)).toBe(0);
    } finally {
      r.disconnect();
    }
  });
});

describe('planRetention', () => {
  const ck = (step: number, state: CheckpointState, extra: Partial<Checkpoint> = {}) => ({ id: `c${step}`, step, state, node: 'n', committedAt: new Date(step), updatedAt: new Date(0), reason: '', ...extra }) as Checkpoint;
  const C = CheckpointState.CHECKPOINT_STATE_COMMITTED;
  it('keeps the newest K and every Nth, always the newest committed; collects CORRUPT/ABANDONED after the grace', () => {
    const cks = [ck(100, C), ck(200, C), ck(300, C), ck(400, C), ck(500, CheckpointState.CHECKPOINT_STATE_CORRUPT), ck(600, CheckpointState.CHECKPOINT_STATE_ABANDONED, { updatedAt: new Date(10_000_000) })];
    const plan = planRetention(cks, { keepLast: 2, keepEvery: 200, gcGraceSeconds: 3600, delete: true }, 10_000_000 + 1000);
    expect(plan.map((a) => a.checkpoint.step)).toEqual([100, 500]);
    expect(planRetention(cks, undefined, 1e12).map((a) => a.checkpoint.step)).toEqual([500, 600]);
    expect(planRetention([ck(1, C, { node: '' }), ck(2, C)], { keepLast: 1, keepEvery: 0, gcGraceSeconds: 0, delete: true }, 0)).toEqual([]);
  });
});
