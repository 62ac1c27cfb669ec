// `pnpm bench:list` (part of issue 14's scale targets): `gantry job list` against 100,000 kept
// jobs, through the real gateway and scheduler (gRPC) over Redis, as a user pages them.
//
// The store holds BENCH_LIST_JOBS jobs (100,000) of 20 tenants, submitted through the store's
// own submit script (the scheduler's write path: index sets, outbox events), 97 % of them
// then cancelled and the rest left PENDING (no node can hold them: the stack has no agents,
// so the scheduler passes over them every cycle meanwhile, as it would on a busy cluster).
// Each query is answered BENCH_LIST_REPEAT times (30); p50 and p99 of the wall time of one
// ListJobs call (the call `gantry job list` makes, at its page size) are printed.
// Target: a page in under 200 ms (p99).
import { performance } from 'node:perf_hooks';
import { Job, JobSpec, JobState } from '@gantry/proto';
import { GantryClient } from '@gantry/sdk';
import { JobStore } from '@gantry/store';
import { TestStack } from '../harness/stack.js';

const JOBS = Number(process.env.BENCH_LIST_JOBS ?? 100_000);
const REPEAT = Number(process.env.BENCH_LIST_REPEAT ?? 30);
const TENANTS = 20;
/** The CLI's page: `gantry job list` asks with page_size 0, which the scheduler serves as 100. */
const PAGE = 100;
const TARGET_MS = 200;

const stack = await new TestStack({ agents: 0, schedulers: 1 }).start();
const client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 30_000, retry: false, configFile: false });
try {
  const store = new JobStore(stack.redis);
  const seedStart = performance.now();
  const base = Date.now() - JOBS * 10;
  const keepPending = (i: number) => i % 33 === 0;
  let next = 0;
  // 64 submits in flight: the store's own script per job, as the scheduler writes them.
  await Promise.all(Array.from({ length: 64 }, async () => {
    for (let i = next++; i < JOBS; i = next++) {
      const spec = JobSpec.create({
        name: `train-${i}`, tenant: `team-${i % TENANTS}`, nodes: 1 + (i % 4), gpusPerNode: 8,
        command: ['torchrun', '--nproc-per-node=8', 'train.py', `--run=${i}`], env: { NCCL_DEBUG: 'WARN', RUN: String(i) },
      });
      const { job } = await store.submit(Job.create({ id: `bench-${String(i).padStart(6, '0')}`, spec, createdAt: new Date(base + i * 10) }), '');
      if (!keepPending(i)) await store.commit({ prev: { job, rev: 1 }, next: Job.create({ ...job, state: JobState.JOB_STATE_CANCELLED }), reason: 'cancelled by bench' });
    }
  }));
  console.log(`seeded ${JOBS.toLocaleString('en-US')} jobs (${TENANTS} tenants, ${Math.ceil(JOBS / 33).toLocaleString('en-US')} PENDING) in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

  // A page deep in the list: the token after 50 pages of the whole list.
  let deepToken = '';
  for (let p = 0; p < 50; p++) deepToken = (await client.listJobs({ pageSize: PAGE, pageToken: deepToken })).nextPageToken;

  const queries: [string, Parameters<GantryClient['listJobs']>[0]][] = [
    ['first page, all jobs', { pageSize: PAGE }],
    ['page 51, all jobs (page token)', { pageSize: PAGE, pageToken: deepToken }],
    ['one tenant (5,000 jobs)', { pageSize: PAGE, tenant: 'team-7' }],
    ['PENDING only', { pageSize: PAGE, states: [JobState.JOB_STATE_PENDING] }],
    ['one tenant, PENDING', { pageSize: PAGE, tenant: 'team-7', states: [JobState.JOB_STATE_PENDING] }],
    ['RUNNING (none)', { pageSize: PAGE, states: [JobState.JOB_STATE_RUNNING] }],
  ];
  let worst = 0;
  console.log(`\nListJobs through the gateway, page of ${PAGE}, ${REPEAT} calls each`);
  console.log('query                               jobs  p50 ms  p99 ms');
  for (const [name, q] of queries) {
    const times: number[] = [];
    let count = 0;
    for (let r = 0; r < REPEAT; r++) {
      const t = performance.now();
      count = (await client.listJobs(q)).jobs.length;
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const p50 = times[Math.floor(times.length / 2)]!;
    const p99 = times[Math.min(times.length - 1, Math.ceil(times.length * 0.99) - 1)]!;
    worst = Math.max(worst, p99);
    console.log(`${name.padEnd(34)} ${String(count).padStart(5)} ${p50.toFixed(1).padStart(7)} ${p99.toFixed(1).padStart(7)}`);
  }
  // Every page of one tenant, as `gantry job list --tenant team-7 --all` fetches them.
  const t = performance.now();
  let pages = 0;
  let all = 0;
  for (let token = ''; ;) {
    const page = await client.listJobs({ pageSize: PAGE, tenant: 'team-7', pageToken: token });
    pages++;
    all += page.jobs.length;
    if (!page.nextPageToken) break;
    token = page.nextPageToken;
  }
  console.log(`all ${all.toLocaleString('en-US')} jobs of one tenant: ${pages} pages in ${(performance.now() - t).toFixed(0)} ms`);
  const pass = worst < TARGET_MS;
  console.log(`\nworst p99 ${worst.toFixed(1)} ms (target < ${TARGET_MS} ms with ${JOBS.toLocaleString('en-US')} jobs): ${pass ? 'PASS' : 'FAIL'}`);
  process.exitCode = pass ? 0 : 1;
} finally {
  client.close();
  await stack.stop();
}
