// `pnpm soak:ha`: many short single- and multi-node jobs on the HA data plane (three-node NATS
// JetStream cluster, Redis primary + replica + three sentinels, two schedulers, four agents),
// every rank appending "job attempt rank" to a marker file, while one fault after another hits
// it:
//   1. kill -9 the NATS server the scheduler leader is connected to (restarted after);
//   2. kill -9 the Redis primary (Sentinel promotes the replica; the old one returns as replica);
//   3. kill -9 the scheduler leader (the standby takes over; the killed one returns as standby);
//   4. kill -9 one agent and restart it (it re-adopts its ranks);
//   5. partition one agent from NATS for longer than the heartbeat timeout, then restore it.
// Then it prints jobs by final state, stuck jobs, rank executions run twice, events lost from
// WatchJob histories, GPU claims left with nothing running, and how long each fault took to
// heal; it exits 1 when any of the must-be-zero figures is not.
//
// Options (environment): SOAK_JOBS (default 500), SOAK_IN_FLIGHT (jobs submitted but not
// finished at a time, default 12), SOAK_DEADLINE_S (default 1200), SOAK_HEARTBEAT_TIMEOUT_MS
// (default 6000; the partition lasts twice that), SOAK_SETTLE_MS (pause between faults, default
// 3000); GANTRY_KEEP_TEST_DIRS=1 keeps the logs and the marker file.
import { join } from 'node:path';
import { GantryClient } from '@gantry/sdk';
import { JobState, NodeState, jobStateName, isTerminalJobState } from '@gantry/proto';
import { JobStore, NodeStore, keys } from '@gantry/store';
import { TestStack, eventually } from '../harness/stack.js';
import { TcpProxy } from '../harness/tcp-proxy.js';
import { markerCommand, orphanClaims, readMarkers, watchHistoryGaps } from '../harness/ha-checks.js';

export interface SoakOptions {
  jobs: number;
  inFlight: number;
  deadlineMs: number;
  /** Heartbeat timeout of the schedulers (the partition lasts twice as long); default 6000. */
  heartbeatTimeoutMs?: number;
  /** Pause after each fault has healed, before the next; default 3000. */
  settleMs?: number;
  log?: (line: string) => void;
}

export interface FaultResult {
  fault: string;
  /** From the fault to the component being whole (a new primary, a new leader, the node READY ...), ms. */
  healedMs: number;
  /** From the fault to the first job finishing after it, ms (work flowing again). */
  jobsFlowingMs: number;
}

export interface SoakReport {
  jobs: number;
  byState: Record<string, number>;
  stuck: string[];
  ranTwice: string[];
  retriedAttempts: number;
  historyGaps: string[];
  orphanClaims: string[];
  /** Submissions that failed with an error the client does not retry (each was tried again). */
  submitErrors: string[];
  faults: FaultResult[];
  durationMs: number;
}

const PARTITIONED_AGENT = 3;

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const HEARTBEAT_TIMEOUT_MS = opts.heartbeatTimeoutMs ?? 6_000;
  const settleMs = opts.settleMs ?? 3_000;
  const started = Date.now();
  // The partitioned agent reaches the NATS servers through proxies the soak can cut.
  const proxies: TcpProxy[] = [];
  const stack = new TestStack({
    ha: true, agents: 4, schedulers: 2, gpusPerAgent: 8,
    heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, heartbeatIntervalMs: 500, leaseTtlMs: 3_000, stopGraceSeconds: 1,
    env: { 'node-agent': { PARTITION_GRACE_MS: String(Math.round(HEARTBEAT_TIMEOUT_MS * 4 / 3)), LOG_LEVEL: 'info' }, scheduler: { LOG_LEVEL: 'info' }, gateway: { LOG_LEVEL: 'info' } },
    agentEnv: (i) => (i === PARTITIONED_AGENT ? { NATS_URL: proxies.map((p) => `nats://127.0.0.1:${p.port}`).join(',') } : {}),
  });
  await startWithProxies(stack, proxies);
  log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s (work dir ${stack.workDir})`);
  const client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 60 } });
  const jobs = new JobStore(stack.redis);
  const marker = join(stack.workDir, 'marker.txt');
  const submitted: string[] = [];
  const finishedAt: number[] = [];
  const done = new Set<string>();

  // Finished jobs, polled from Redis (what the scheduler committed).
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        for (const s of [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]) {
          for (const id of await jobs.idsInState(s)) if (!done.has(id)) { done.add(id); finishedAt.push(Date.now()); }
        }
      } catch { /* Redis failing over */ }
      await sleep(200);
    }
  })();
  const firstFinishAfter = async (t: number, timeoutMs = 120_000) => {
    const d = Date.now() + timeoutMs;
    while (Date.now() < d) {
      const f = finishedAt.find((x) => x > t);
      if (f) return f - t;
      await sleep(100);
    }
    return Number.NaN;
  };

  // Submitter: a mix of 2 x 8, 1 x 8 and 1 x 4 GPU jobs, at most inFlight unfinished; it goes
  // on past opts.jobs while faults are still being injected, so every fault hits running work.
  let faultsDone = false;
  const submitErrors: string[] = [];
  const submitter = (async () => {
    for (let n = 0; n < opts.jobs || !faultsDone; n++) {
      while (submitted.length - done.size >= opts.inFlight) await sleep(100);
      const shape = n % 3 === 0 ? { nodes: 2, gpusPerNode: 8 } : n % 3 === 1 ? { nodes: 1, gpusPerNode: 8 } : { nodes: 1, gpusPerNode: 4 };
      const sleepS = [0.3, 0.8, 1.5][n % 3]!;
      // The client retries what is retryable; anything else is reported and tried again with
      // the same idempotency key (so never a second job).
      for (let tries = 1; ; tries++) {
        try {
          const { job } = await client.submitJob({ ...shape, name: `soak-${n}`, command: markerCommand(marker, sleepS) }, { idempotencyKey: `soak-${n}` });
          submitted.push(job!.id);
          break;
        } catch (err) {
          submitErrors.push(`soak-${n}: ${(err as Error).message}`);
          log(`submit soak-${n} failed (try ${tries}): ${(err as Error).message}`);
          if (tries >= 5) throw err;
          await sleep(1_000);
        }
      }
      if ((n + 1) % 50 === 0) log(`submitted ${n + 1}/${opts.jobs}, finished ${done.size}`);
    }
  })();

  const faults: FaultResult[] = [];
  /** healFrom 'end': heal time counted from the end of the injection (a partition lifted), not its start. */
  const fault = async (name: string, inject: () => Promise<void>, healed: () => Promise<unknown>, after?: () => Promise<void>, healFrom: 'start' | 'end' = 'start') => {
    await eventually('some jobs finishing before the fault', () => (done.size >= Math.min(opts.jobs, 5) ? true : undefined), 180_000, 200);
    const t0 = Date.now();
    await inject();
    const tHeal = healFrom === 'start' ? t0 : Date.now();
    await eventually(`${name} to heal`, healed, 120_000, 100);
    const healedMs = Date.now() - tHeal;
    if (after) await after();
    const jobsFlowingMs = await firstFinishAfter(t0);
    faults.push({ fault: name, healedMs, jobsFlowingMs });
    log(`fault: ${name}: healed in ${healedMs} ms, jobs finishing again after ${jobsFlowingMs} ms`);
    await sleep(settleMs);
  };
  const leaderId = async () => (await stack.redis.get(keys.leader)) ?? '';
  const schedulerProc = (id: string) => stack.schedulers[Number(id.replace('scheduler-', ''))]!;
  const nodeReady = async (i: number, since: number) => {
    const rec = await new NodeStore(stack.redis).get(stack.nodeName(i));
    return rec?.node.state === NodeState.NODE_STATE_READY && rec.heartbeatMs > since ? true : undefined;
  };

  const faultRunner = (async () => {
    // 1. The NATS server the leader uses.
    let victim: Awaited<ReturnType<NonNullable<typeof stack.natsCluster>['memberOf']>>;
    const leaderConn = async () => `scheduler ${await leaderId()}`;
    await fault('kill -9 the NATS server the scheduler leader uses', async () => {
      victim = await eventually('the leader connection', async () => stack.natsCluster!.memberOf(await leaderConn()));
      await victim.kill();
    }, async () => {
      const m = await stack.natsCluster!.memberOf(await leaderConn());
      return m && m !== victim ? true : undefined;
    }, async () => { await victim!.start(); await stack.natsCluster!.healthy(60_000); });

    // 2. The Redis primary.
    const ha = stack.redisHa!;
    let oldPrimary: Awaited<ReturnType<typeof ha.primary>>;
    await fault('kill -9 the Redis primary', async () => {
      oldPrimary = await ha.primary();
      await oldPrimary.kill();
    }, async () => { const p = await ha.primary().catch(() => undefined); return p && p !== oldPrimary ? true : undefined; },
    async () => { await ha.restartAsReplica(oldPrimary); await ha.healthy(60_000); });

    // 3. The scheduler leader.
    let killedLeader = '';
    await fault('kill -9 the scheduler leader', async () => {
      killedLeader = await leaderId();
      await schedulerProc(killedLeader).kill();
    }, async () => { const l = await leaderId(); return l && l !== killedLeader ? true : undefined; },
    async () => { await schedulerProc(killedLeader).start(); });

    // 4. An agent, killed and restarted: healed once the new process heartbeats.
    let restartedAt = 0;
    await fault('kill -9 an agent and restart it', async () => {
      await stack.agents[1]!.kill();
      restartedAt = Date.now();
      await stack.agents[1]!.start();
    }, () => nodeReady(1, restartedAt + 200));

    // 5. A partition of one agent from NATS, longer than the heartbeat timeout.
    let cutAt = 0;
    await fault(`partition an agent from NATS for ${(HEARTBEAT_TIMEOUT_MS * 2) / 1000} s (heal from restore)`, async () => {
      cutAt = Date.now();
      await Promise.all(proxies.map((p) => p.partition()));
      await sleep(HEARTBEAT_TIMEOUT_MS * 2);
      await Promise.all(proxies.map((p) => p.restore()));
    }, () => nodeReady(PARTITIONED_AGENT, cutAt + HEARTBEAT_TIMEOUT_MS * 2), undefined, 'end');
  })().finally(() => { faultsDone = true; });

  const deadline = started + opts.deadlineMs;
  let stuck: string[] = [];
  try {
    await Promise.all([submitter, faultRunner]);
    while (Date.now() < deadline && submitted.some((id) => !done.has(id))) await sleep(250);
    // Let the last releases and events settle.
    await sleep(Math.min(settleMs, 2_000));
    stuck = [];
    for (const id of submitted) {
      const rec = await jobs.get(id);
      if (!rec || !isTerminalJobState(rec.job.state)) stuck.push(`${id} ${rec ? jobStateName(rec.job.state) : 'missing'}`);
    }
    const byState: Record<string, number> = {};
    let retriedAttempts = 0;
    const finals = new Map<string, JobState>();
    for (const rec of await jobs.getMany(submitted)) {
      byState[jobStateName(rec.job.state)] = (byState[jobStateName(rec.job.state)] ?? 0) + 1;
      if (rec.job.attempt > 1) retriedAttempts++;
      finals.set(rec.job.id, rec.job.state);
    }
    const { duplicates } = readMarkers(marker);
    const historyGaps: string[] = [];
    const ids = [...finals.keys()].filter((id) => isTerminalJobState(finals.get(id)!));
    for (let i = 0; i < ids.length; i += 8) {
      await Promise.all(ids.slice(i, i + 8).map(async (id) => {
        for (const g of await watchHistoryGaps(client, id, finals.get(id)!)) historyGaps.push(`${id}: ${g}`);
      }));
    }
    if (historyGaps.length > 0) {
      const lines = stack.logsOf('gateway').split('\n').filter((l) => /"level":(40|50)/.test(l));
      log(`gateway warnings/errors (last 5):\n${lines.slice(-5).join('\n')}`);
    }
    const orphans = await orphanClaims(stack.redis);
    if (stuck.length + duplicates.length + historyGaps.length + orphans.length + submitErrors.length > 0) {
      process.env.GANTRY_KEEP_TEST_DIRS = '1';
      log(`logs kept in ${stack.workDir}/logs`);
    }
    return { jobs: submitted.length, byState, stuck, ranTwice: duplicates, retriedAttempts, historyGaps, orphanClaims: orphans, submitErrors, faults, durationMs: Date.now() - started };
  } catch (err) {
    // Keep the logs of a soak that broke down.
    process.env.GANTRY_KEEP_TEST_DIRS = '1';
    log(`soak aborted: ${(err as Error).message}; logs kept in ${stack.workDir}/logs`);
    throw err;
  } finally {
    polling = false;
    await poller;
    client.close();
    await stack.stop();
    await Promise.all(proxies.map((p) => p.stop()));
  }
}

/** Starts the stack's data plane, the proxies for the partitioned agent in front of it, then the rest. */
async function startWithProxies(stack: TestStack, proxies: TcpProxy[]): Promise<void> {
  // TestStack.start starts the data plane before any agent, and agentEnv is read when the
  // agents are created: create the proxies as soon as the cluster exists.
  const watch = (async () => {
    while (!stack.natsCluster) await sleep(20);
    for (const m of stack.natsCluster.members) proxies.push(await TcpProxy.start(m.port));
  })();
  await Promise.all([stack.start(), watch]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function printReport(r: SoakReport, log: (l: string) => void = (l) => console.log(l)): boolean {
  log('');
  log(`HA soak: ${r.jobs} jobs in ${(r.durationMs / 1000).toFixed(0)} s`);
  log(`  jobs by final state:            ${Object.entries(r.byState).map(([s, n]) => `${s.replace('JOB_STATE_', '')} ${n}`).join(', ')}`);
  log(`  jobs that needed a 2nd attempt: ${r.retriedAttempts}`);
  log(`  jobs stuck:                     ${r.stuck.length}${r.stuck.length ? ` (${r.stuck.slice(0, 10).join('; ')})` : ''}`);
  log(`  rank executions run twice:      ${r.ranTwice.length}${r.ranTwice.length ? ` (${r.ranTwice.slice(0, 10).join('; ')})` : ''}`);
  log(`  events lost from WatchJob:      ${r.historyGaps.length}${r.historyGaps.length ? ` (${r.historyGaps.slice(0, 10).join('; ')})` : ''}`);
  log(`  submits failed (not retried by the client): ${r.submitErrors.length}${r.submitErrors.length ? ` (${r.submitErrors.slice(0, 5).join('; ')})` : ''}`);
  log(`  GPU claims with nothing running: ${r.orphanClaims.length}${r.orphanClaims.length ? ` (${r.orphanClaims.slice(0, 10).join('; ')})` : ''}`);
  log('  faults (healed = component whole again; flowing = first job finished after the fault):');
  for (const f of r.faults) log(`    ${f.fault.padEnd(62)} healed ${String(f.healedMs).padStart(6)} ms   flowing ${String(f.jobsFlowingMs).padStart(6)} ms`);
  const ok = r.stuck.length === 0 && r.ranTwice.length === 0 && r.submitErrors.length === 0 && r.historyGaps.length === 0 && r.orphanClaims.length === 0 && r.faults.length === 5;
  log(ok ? 'OK' : 'FAILED');
  return ok;
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  const report = await runSoak({
    jobs: Number(process.env.SOAK_JOBS ?? 500),
    inFlight: Number(process.env.SOAK_IN_FLIGHT ?? 12),
    deadlineMs: Number(process.env.SOAK_DEADLINE_S ?? 1200) * 1000,
    heartbeatTimeoutMs: Number(process.env.SOAK_HEARTBEAT_TIMEOUT_MS ?? 6000),
    settleMs: Number(process.env.SOAK_SETTLE_MS ?? 3000),
  });
  process.exitCode = printReport(report) ? 0 : 1;
}
