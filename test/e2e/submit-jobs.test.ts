// SubmitJobs end to end through the SDK: gateway -> scheduler -> Redis -> agents. A batch is
// answered per submission (a refused one does not fail the rest), keys de-duplicate within a
// batch and across retries of it, and the jobs it creates run like any other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { GantryClient, GantryError, type JobSpecInput, type SubmitJobsItem } from '@gantry/sdk';
import { JobState, jobStateName } from '@gantry/proto';
import { TestStack } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';

let stack: TestStack;
let client: GantryClient;

beforeAll(async () => {
  stack = await new TestStack({ agents: 2 }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000 });
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

const spec = (name: string): JobSpecInput => ({ name, nodes: 1, gpusPerNode: 1, command: ['sh', '-c', `echo ${name}`] });

/** One line per item: the job id and whether it was created, or the refusal's code. */
const outline = (items: SubmitJobsItem[]) => items.map((it) => (it.ok ? `${it.job.id} ${it.created ? 'created' : 'existing'}` : it.error.codeName));

async function allJobIds(): Promise<string[]> {
  const ids: string[] = [];
  for await (const j of client.listAllJobs()) ids.push(j.id);
  return ids.sort();
}

async function refusal(p: Promise<unknown>): Promise<GantryError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (err instanceof GantryError) return err;
  throw new Error(`expected a GantryError, got ${String(err)}`);
}

describe('SubmitJobs', () => {
  it('answers each submission on its own, runs the good jobs, and a retried batch creates nothing', async () => {
    const specs = [spec('a'), { ...spec('bad'), nodes: 0 }, spec('b'), spec('a'), spec('a-changed')];
    const idempotencyKeys = ['key-a', 'key-bad', 'key-b', 'key-a', 'key-a'];
    const first = await client.submitJobs(specs, { idempotencyKeys });

    const [a, bad, b, dup, changed] = first;
    expect(a).toMatchObject({ ok: true, created: true });
    expect(b).toMatchObject({ ok: true, created: true });
    const idA = (a as { job: { id: string } }).job.id;
    const idB = (b as { job: { id: string } }).job.id;
    expect(idA).not.toBe(idB);
    // The same key and spec later in the batch: the first item's job, not a second one.
    expect(outline([dup!])).toEqual([`${idA} existing`]);
    expect(bad!.ok ? undefined : [bad!.error.codeName, bad!.error.details]).toEqual(['INVALID_ARGUMENT', 'spec.nodes must be between 1 and 4096, got 0']);
    expect(changed!.ok ? undefined : [changed!.error.codeName, changed!.error.details])
      .toEqual(['ALREADY_EXISTS', `idempotency key "key-a" already created job ${idA} with a different spec; use a new key, or the same spec to get that job back`]);
    expect(await allJobIds()).toEqual([idA, idB].sort());

    for (const [id, name] of [[idA, 'a'], [idB, 'b']] as const) {
      const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED]);
      expect([name, jobStateName(done.state)]).toEqual([name, 'SUCCEEDED']);
      expect(done.spec?.name).toBe(name);
    }

    const again = await client.submitJobs(specs, { idempotencyKeys });
    expect(outline(again)).toEqual([`${idA} existing`, 'INVALID_ARGUMENT', `${idB} existing`, `${idA} existing`, 'ALREADY_EXISTS']);
    expect(again[0]!.ok && jobStateName(again[0]!.job.state)).toBe('SUCCEEDED');
    expect(await allJobIds()).toEqual([idA, idB].sort());
  });

  it('refuses an empty batch and one over 1,000 submissions as a whole', async () => {
    const empty = await refusal(client.submitJobs([]));
    expect([empty.codeName, empty.details]).toEqual(['INVALID_ARGUMENT', 'jobs is empty: SubmitJobs needs at least one submission']);
    const over = await refusal(client.submitJobs(Array.from({ length: 1001 }, (_, i) => spec(`many-${i}`))));
    expect([over.codeName, over.details]).toEqual(['INVALID_ARGUMENT', 'jobs has 1001 submissions; SubmitJobs takes at most 1000 per call']);
  });

  it('the scheduler\'s own SubmitJobs applies the gateway\'s rules per submission', async () => {
    const direct = new GantryClient({ address: stack.schedulerAddrs[0]!, timeoutMs: 5_000, retry: false, configFile: false, tls: stack.internalClientTls });
    try {
      const res = await direct.submitJobs([{ ...spec('direct-bad'), command: [] }, { ...spec('direct-ok'), command: ['true'] }]);
      expect(res[0]!.ok ? undefined : [res[0]!.error.codeName, res[0]!.error.details]).toEqual(['INVALID_ARGUMENT', 'spec.command must not be empty']);
      expect(res[1]).toMatchObject({ ok: true, created: true, job: { spec: { name: 'direct-ok' } } });
      const over = await refusal(direct.submitJobs(Array.from({ length: 1001 }, (_, i) => spec(`direct-${i}`))));
      expect(over.codeName).toBe('INVALID_ARGUMENT');
    } finally {
      direct.close();
    }
  });

  it('concurrent SubmitJob calls reach the scheduler together, each answered as if alone', async () => {
    const logFile = stack.schedulers[0]!.opts.logFile;
    const batchesBefore = readFileSync(logFile, 'utf8').split('jobs submitted in a batch').length;
    // 40 calls at once: 38 new jobs, the same key and spec again (that job back), and the same
    // key with another spec (ALREADY_EXISTS, for that call alone).
    const calls = Array.from({ length: 38 }, (_, i) => client.submitJob({ ...spec(`c-${i}`), command: ['true'] }, { idempotencyKey: `c-key-${i}` }));
    calls.push(client.submitJob({ ...spec('c-0'), command: ['true'] }, { idempotencyKey: 'c-key-0' }));
    calls.push(client.submitJob({ ...spec('c-changed'), command: ['true'] }, { idempotencyKey: 'c-key-1' }));
    const settled = await Promise.allSettled(calls);
    const ids = settled.slice(0, 38).map((r, i) => {
      if (r.status !== 'fulfilled') throw new Error(`call ${i} failed: ${String(r.reason)}`);
      expect(r.value).toMatchObject({ created: true, job: { spec: { name: `c-${i}` } } });
      return r.value.job!.id;
    });
    expect(new Set(ids).size).toBe(38);
    expect(settled[38]).toMatchObject({ status: 'fulfilled', value: { created: false, job: { id: ids[0] } } });
    const changed = settled[39]!.status === 'rejected' ? (settled[39] as PromiseRejectedResult).reason as GantryError : undefined;
    expect([changed?.codeName, changed?.details]).toEqual(['ALREADY_EXISTS', `idempotency key "c-key-1" already created job ${ids[1]} with a different spec; use a new key, or the same spec to get that job back`]);
    // They went as SubmitJobs calls (the scheduler logs each batch), not 40 calls of their own.
    expect(readFileSync(logFile, 'utf8').split('jobs submitted in a batch').length).toBeGreaterThan(batchesBefore);
    for (const id of ids.slice(0, 3)) expect(jobStateName((await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED])).state)).toBe('SUCCEEDED');
  });

  it('concurrent submissions too large for one call together still each get their job', async () => {
    // 30 specs of ~200 KB (each under the 256 KiB spec limit): about 6 MB together, past gRPC's
    // 4 MiB message limit for one gateway -> scheduler call.
    const big = 'x'.repeat(100 * 1024);
    const settled = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => client.submitJob({ ...spec(`big-${i}`), command: ['true'], env: { A: big, B: big } })));
    const failures = settled.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(failures).toEqual([]);
    const ids = settled.map((r) => (r as PromiseFulfilledResult<{ job?: { id: string } }>).value.job!.id);
    expect(new Set(ids).size).toBe(30);
  });
});
