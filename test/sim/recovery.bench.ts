// Recovery benchmark: `pnpm bench:recovery` (node --import tsx test/sim/recovery.bench.ts).
//
// Runs through the REAL local services (test/harness TestStack: nats-server, redis-server,
// scheduler, gateway, checkpoint service and simulated 8-GPU agents, each its own process)
// a stream of multi-node and single-node jobs while it injects faults of every class, twice
// with the same seeded schedule on a fresh stack each time:
//
//   gantry  Gantry's own recovery: default retry policy (node, infrastructure and contained
//           GPU faults retried up to 3 times; application errors not), attribution, exclusion
//           of the blamed node, graded recovery, 2 hot spares, operator-grade fast settings.
//   naive   what a user has without it (Slurm --requeue, a k8s Job backoffLimit loop): Gantry
//           never recovers (recovery.maxRecoveries 0, no spares, no blame penalty, no settle
//           window) and the BENCHMARK resubmits a FAILED job at once, as a new job with the
//           same spec, on whatever nodes the scheduler gives it, up to 3 times. No
//           classification, no exclusion. It still gets Gantry's detection (an XID or a lost
//           heartbeat ends the job within seconds instead of a hung NCCL collective), and it
//           retries with no backoff: both are generous to it.
//
// Hardware model (the same for both policies; the agents are simulated, so the benchmark
// plays the hardware):
//   - XID 79 / 48 / 119 on a GPU of a running job BREAKS its node for the rest of the phase:
//     whenever a rank of any job starts on a broken node, the benchmark injects the same XID
//     on a GPU of that rank within ~0.3 s (a GPU that fell off the bus does not come back).
//   - XID 94 (contained ECC error) is transient: the node stays healthy.
//   - agent kill: the node is down for the rest of the phase (a fresh stack per phase).
//   - rank crash: the job itself exits 1 on one rank, once per chain (a transient application
//     error; a marker on the shared file system records that it happened). Those jobs opt in
//     to retrying application errors in Gantry (retryOn includes application); the naive
//     loop retries everything anyway.
//   - Each job has at most one fault of its own, fired on the first try that has run long
//     enough (planned delay on the first try, at most 2 s on a later, shorter try). A chain
//     the policy has already given up on never gets it, so the injected counts can differ.
//   - deterministic application bug: one job fails the same way on every try. Gantry's
//     default does not retry it; the naive loop does. Reported on its own line, not a chain.
//   - NFS stall and RDMA link flap: infrastructure probes. Today's detection does not turn
//     them into a failure, so the right outcome is NO recovery: reported as "no false
//     recovery", not as faults to recover from.
//
// Figures (per policy):
//   - fault -> all ranks running again: from the fault (bench clock at injection; the rank's
//     own exit time for a crash) to the RUNNING of the chain's next try (Attempt.startedAt)
//     that did not land on hardware already known bad (a retry that starts on a broken node
//     and is hit again does not count as running again). A chain that never runs again counts
//     as infinite. One sample per recovery episode; p99 is nearest-rank (the max below 100).
//   - chain success: a chain is one job's tries from submit to final state (Gantry: the
//     attempts of one job; naive: the original job and its resubmissions). Shown for chains
//     that a fault hit (the target) and for all chains.
//   - GPU-seconds lost: for every try that did not complete, per rank, GPUs x (rank end -
//     try scheduled), i.e. the GPU time claimed by attempts whose work was thrown away. GPUs
//     held idle during recovery: Gantry releases every GPU of a failed attempt (kept ranks are
//     a placement preference, not a reservation), so none are counted; hot spares are idle
//     capacity held for recovery and are shown separately as an upper bound. Also shown: the
//     GPU-seconds of work the FAILED chains never delivered (GPUs x first-try length).
//   - blame: for every try ended by an injected node fault (XID 79/48/119, agent kill), whether
//     Attempt.failure names that node with class node-fault and Job.excludedNodes holds it;
//     and how many healthy nodes were excluded. The naive policy blames nothing.
//
// Environment: BENCH_SEED (8), BENCH_AGENTS (12), BENCH_HEALTHY_JOBS (10, jobs with no fault of
// their own), BENCH_WORK_SEC (14), BENCH_RETRY_WORK_SEC (5), BENCH_ARRIVAL_GAP_MS (2000),
// BENCH_PHASE_TIMEOUT_SEC (210), BENCH_ONLY (gantry|naive), BENCH_VERBOSE (1: print a timeline),
// BENCH_DUMP (a path prefix: write each phase's jobs and injections as <prefix>.<policy>.json).
import {
  FailureClass, Job, JobState, RankPhase, RecoveryGrade, failureClassName, isTerminalJobState, jobStateName, recoveryGradeName, type Attempt,
  type OperationsReport,
} from '@gantry/proto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GantryClient, type JobSpecInput } from '@gantry/sdk';
import { simProgram } from '../../services/node-agent/src/sim-cli.js';
import { TestStack } from '../harness/stack.js';
import { rng } from '../../services/scheduler/bench/workload.js';

const env = (name: string, fallback: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${v}"`);
  return n;
};

const SEED = env('BENCH_SEED', 8);
const AGENTS = env('BENCH_AGENTS', 12);
const GPUS_PER_AGENT = 8;
const HEALTHY_JOBS = env('BENCH_HEALTHY_JOBS', 10);
const WORK_SEC = env('BENCH_WORK_SEC', 14);
const RETRY_WORK_SEC = env('BENCH_RETRY_WORK_SEC', 5);
const ARRIVAL_GAP_MS = env('BENCH_ARRIVAL_GAP_MS', 2_000);
const PHASE_TIMEOUT_MS = env('BENCH_PHASE_TIMEOUT_SEC', 210) * 1000;
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const ONLY = process.env.BENCH_ONLY;
const HEARTBEAT_TIMEOUT_MS = 3_000;
const NAIVE_RETRIES = 3;
const SPARES = 2;
const TICK_MS = 250;
/** A chain's own fault that has not hit yet hits a later try this soon after it is RUNNING (retries are short). */
const RETRY_FAULT_AFTER_SEC = 2;

/** Operator settings a real cluster could run: a 1.5 s settle window, a 1 s first backoff. */
const GANTRY_CONFIG = {
  recovery: { settleMs: 1_500, backoffInitialMs: 1_000, backoffMaxMs: 4_000, backoffJitter: 0.2 },
  spares: { pools: [{ count: SPARES }] },
};
/** Gantry never recovers: the benchmark's resubmit loop is the whole policy. */
const NAIVE_CONFIG = {
  recovery: { maxRecoveries: 0, settleMs: 0, blamePenaltySec: 0 },
  spares: { pools: [] },
};

type Policy = 'gantry' | 'naive';
type FaultKind = 'xid79' | 'xid48' | 'xid119' | 'xid94' | 'agent-kill' | 'rank-crash' | 'nfs-stall' | 'link-flap' | 'app-bug' | 'none';

/** One of each breaking XID and one agent kill (at most 4 nodes of 12 lost), transient faults x4. */
const FAULT_MIX: FaultKind[] = [
  'xid79', 'xid48', 'xid119', 'agent-kill', 'xid94', 'xid94', 'xid94', 'xid94',
  'rank-crash', 'rank-crash', 'rank-crash', 'rank-crash', 'nfs-stall', 'nfs-stall', 'link-flap', 'app-bug',
];
const BREAKING_XIDS = new Set([79, 48, 119]);
const INJECTED: ReadonlySet<FaultKind> = new Set(['xid79', 'xid48', 'xid119', 'xid94', 'agent-kill', 'nfs-stall', 'link-flap']);

// ---- the seeded schedule ----------------------------------------------------------------


const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

interface JobPlan {
  index: number;
  name: string;
  fault: FaultKind;
  nodes: number;
  gpusPerNode: number;
  /** Submitted this long after the phase starts. */
  arrivalMs: number;
  /** Length of the first try; every later try (resumed from a checkpoint) runs RETRY_WORK_SEC. */
  workSec: number;
  /** The fault hits this long after the try is RUNNING (the crash: after the rank starts). */
  faultAfterSec: number;
  /** Which rank's node (and GPU slot of it) the fault hits. */
  faultRank: number;
  gpuSlot: number;
}

function makePlan(seed: number): JobPlan[] {
  const r = rng(seed);
  const kinds: FaultKind[] = [...FAULT_MIX, ...Array.from({ length: HEALTHY_JOBS }, () => 'none' as const)];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  return kinds.map((fault, index) => {
    const nodes = pick(r, fault === 'none' || fault === 'app-bug' ? [1, 1, 2, 2, 3] : [1, 2, 2, 2, 3, 4]);
    const gpusPerNode = pick(r, [8, 8, 4]);
    return {
      index, fault, nodes, gpusPerNode,
      name: `b${String(index).padStart(2, '0')}-${fault}`,
      arrivalMs: index * ARRIVAL_GAP_MS + Math.floor(r() * 1000),
      workSec: WORK_SEC + Math.floor(r() * 6),
      faultAfterSec: Math.round((3 + r() * 7) * 10) / 10,
      faultRank: Math.floor(r() * nodes),
      gpuSlot: Math.floor(r() * gpusPerNode),
    };
  });
}

/**
 * Every rank: the first try of the chain (GANTRY_ATTEMPT 1, BENCH_TRY 1) runs BENCH_WORK
 * seconds, every later try (resumed from a checkpoint) BENCH_RETRY_WORK. A transient crash:
 * rank BENCH_CRASH_RANK exits 1 after BENCH_CRASH_AFTER seconds (BENCH_CRASH_AFTER_RETRY on a
 * later try), once per chain (the marker directory BENCH_MARK, on the shared file system,
 * says it happened; a try killed by another fault before it does not count). BENCH_BUG_AFTER:
 * rank 0 fails the same way on every try (a deterministic bug).
 */
const RANK_SCRIPT = [
  'if [ -n "$BENCH_BUG_AFTER" ] && [ "$NODE_RANK" = 0 ]; then sleep "$BENCH_BUG_AFTER"; echo "KeyError: \'labels\' in the data loader (deterministic bug)" >&2; exit 1; fi',
  'first=0; if [ "$GANTRY_ATTEMPT" = 1 ] && [ "$BENCH_TRY" = 1 ]; then first=1; fi',
  'if [ "$NODE_RANK" = "${BENCH_CRASH_RANK:-none}" ] && [ ! -d "$BENCH_MARK" ]; then',
  '  if [ $first = 1 ]; then sleep "$BENCH_CRASH_AFTER"; else sleep "$BENCH_CRASH_AFTER_RETRY"; fi',
  '  if mkdir "$BENCH_MARK" 2>/dev/null; then echo "RuntimeError: loss is NaN at step 1234 (transient crash)" >&2; exit 1; fi',
  'fi',
  'if [ $first = 1 ]; then exec sleep "$BENCH_WORK"; fi',
  'exec sleep "$BENCH_RETRY_WORK"',
].join('\n');

function specOf(p: JobPlan, policy: Policy, tryNo: number, markDir: string): JobSpecInput {
  const vars: Record<string, string> = { BENCH_WORK: String(p.workSec), BENCH_RETRY_WORK: String(RETRY_WORK_SEC), BENCH_TRY: String(tryNo) };
  if (p.fault === 'rank-crash') {
    Object.assign(vars, {
      BENCH_CRASH_RANK: String(p.faultRank), BENCH_CRASH_AFTER: String(p.faultAfterSec),
      BENCH_CRASH_AFTER_RETRY: String(Math.min(p.faultAfterSec, RETRY_FAULT_AFTER_SEC)), BENCH_MARK: join(markDir, p.name),
    });
  }
  if (p.fault === 'app-bug') vars.BENCH_BUG_AFTER = '4';
  const spec: JobSpecInput = {
    name: policy === 'naive' && tryNo > 1 ? `${p.name}-try${tryNo}` : p.name,
    nodes: p.nodes, gpusPerNode: p.gpusPerNode, stopGraceSeconds: 1, command: ['sh', '-c', RANK_SCRIPT], env: vars,
  };
  if (policy === 'naive') spec.retry = { maxRecoveries: 0, retryOn: [] };
  else if (p.fault === 'rank-crash') {
    spec.retry = { retryOn: [FailureClass.FAILURE_CLASS_NODE_FAULT, FailureClass.FAILURE_CLASS_INFRASTRUCTURE, FailureClass.FAILURE_CLASS_GPU_CONTAINED, FailureClass.FAILURE_CLASS_APPLICATION] };
  }
  return spec;
}

// ---- one phase through the real services ------------------------------------------------

interface Chain {
  plan: JobPlan;
  jobIds: string[];
  fired: boolean;
  done: boolean;
}

interface XidShot { chain: number; jobId: string; attempt: number; node: string; gpu: number; xid: number; at: number; primary: boolean }
interface Kill { node: string; at: number }
interface Probe { kind: FaultKind; chain: number; jobId: string; attempt: number; node: string; at: number }

interface PhaseRun {
  policy: Policy;
  startupMs: number;
  wallMs: number;
  startedAt: number;
  endedAt: number;
  timedOut: boolean;
  chains: Chain[];
  jobs: Map<string, Job>;
  xids: XidShot[];
  kills: Kill[];
  probes: Probe[];
  brokenSince: Map<string, number>;
  injected: Record<string, number>;
  timeline: string[];
  /** `gantry report` of the phase (GetOperationsReport through the gateway), checked against the phase's truth. */
  report?: OperationsReport | undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const current = (j: Job): Attempt | undefined => j.attempts.find((a) => a.number === j.attempt);
const nodeIndex = (node: string) => Number(node.slice(node.lastIndexOf('-') + 1));

let activeStack: TestStack | undefined;

async function inject(stack: TestStack, node: string, args: string[]): Promise<void> {
  const dir = stack.agentStateDir(nodeIndex(node));
  await simProgram(() => dir, () => undefined).parseAsync(['sim', 'inject', ...args, '--state-dir', dir], { from: 'user' });
  await sleep(2); // the queued file is named by the millisecond
}

async function runPhase(policy: Policy, plan: JobPlan[]): Promise<PhaseRun> {
  const quiet = { LOG_LEVEL: 'info' };
  const stack = new TestStack({
    agents: AGENTS, gpusPerAgent: GPUS_PER_AGENT, heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, heartbeatIntervalMs: 500, stopGraceSeconds: 1,
    env: { scheduler: quiet, gateway: quiet, checkpoint: quiet, 'node-agent': quiet },
  });
  activeStack = stack;
  let client: GantryClient | undefined;
  const bootAt = Date.now();
  try {
    await stack.start();
    const startupMs = Date.now() - bootAt;
    client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 20 } });
    await client.setSchedulingConfig(policy === 'gantry' ? GANTRY_CONFIG : NAIVE_CONFIG);
    console.log(`[${policy}] stack up in ${(startupMs / 1000).toFixed(1)} s (${AGENTS} agents x ${GPUS_PER_AGENT} GPUs); running ${plan.length} chains`);
    return await drive(stack, client, policy, plan, startupMs);
  } finally {
    client?.close();
    await stack.stop();
    activeStack = undefined;
  }
}

async function drive(stack: TestStack, client: GantryClient, policy: Policy, plan: JobPlan[], startupMs: number): Promise<PhaseRun> {
  const run: PhaseRun = {
    policy, startupMs, wallMs: 0, startedAt: Date.now(), endedAt: 0, timedOut: false,
    chains: plan.map((p) => ({ plan: p, jobIds: [], fired: false, done: false })),
    jobs: new Map(), xids: [], kills: [], probes: [], brokenSince: new Map(), injected: {}, timeline: [],
  };
  const broken = new Map<string, number>(); // node -> XID it keeps raising
  const shotKeys = new Set<string>();
  const t = () => `t+${((Date.now() - run.startedAt) / 1000).toFixed(1).padStart(5)}s`;
  const note = (msg: string) => {
    run.timeline.push(`${t()} ${msg}`);
    if (VERBOSE) console.log(`  [${policy}] ${t()} ${msg}`);
  };
  const count = (k: string) => { run.injected[k] = (run.injected[k] ?? 0) + 1; };

  const markDir = join(stack.workDir, 'marks');
  mkdirSync(markDir, { recursive: true });
  const submit = async (c: Chain) => {
    const { job } = await client.submitJob(specOf(c.plan, policy, c.jobIds.length + 1, markDir));
    c.jobIds.push(job!.id);
    run.jobs.set(job!.id, job!);
  };

  /** Injects an XID on a GPU of the job's attempt, unless (fetched afresh) it has ended meanwhile: the GPU may be another job's by now. */
  const shootXid = async (c: number, job: Job, a: Attempt, node: string, gpu: number, xid: number, primary: boolean): Promise<boolean> => {
    const fresh = await client.getJob(job.id).catch(() => undefined);
    if (!fresh || fresh.attempt !== a.number || (fresh.state !== JobState.JOB_STATE_SCHEDULED && fresh.state !== JobState.JOB_STATE_RUNNING)) return false;
    const at = Date.now();
    await inject(stack, node, ['xid', String(xid), '--gpu', String(gpu)]);
    run.xids.push({ chain: c, jobId: job.id, attempt: a.number, node, gpu, xid, at, primary });
    count(primary ? `xid${xid}` : `xid${xid} (broken node hit again)`);
    note(`XID ${xid} on ${node} GPU ${gpu} -> ${job.spec?.name} attempt ${a.number}${primary ? '' : ' (broken node)'}`);
    return true;
  };

  while (true) {
    const now = Date.now();
    const elapsed = now - run.startedAt;
    for (const c of run.chains) if (c.jobIds.length === 0 && c.plan.arrivalMs <= elapsed) await submit(c);
    try {
      const page = await client.listJobs({ pageSize: 1000 });
      for (const j of page.jobs) run.jobs.set(j.id, j);
    } catch (err) {
      note(`listJobs failed: ${(err as Error).message}`);
      await sleep(TICK_MS);
      continue;
    }

    for (const [ci, c] of run.chains.entries()) {
      if (c.done || c.jobIds.length === 0) continue;
      const job = run.jobs.get(c.jobIds.at(-1)!)!;
      if (isTerminalJobState(job.state)) {
        const retry = policy === 'naive' && job.state === JobState.JOB_STATE_FAILED && c.jobIds.length <= NAIVE_RETRIES;
        if (retry) {
          await submit(c);
          note(`${c.plan.name} FAILED (${job.reason.slice(0, 90)}); naive resubmit #${c.jobIds.length - 1}`);
        } else {
          c.done = true;
          note(`${c.plan.name} ${jobStateName(job.state)} after ${policy === 'naive' ? c.jobIds.length : job.attempt} tries${job.state === JobState.JOB_STATE_FAILED ? `: ${job.reason.slice(0, 110)}` : ''}`);
        }
        continue;
      }
      const a = current(job);
      if (!a) continue;

      // The chain's own fault, once, when a try has been RUNNING long enough (on the first
      // try its planned delay; a try after another fault is short, so then sooner).
      const kind = c.plan.fault;
      const tryNo = policy === 'naive' ? c.jobIds.length : job.attempt;
      const after = tryNo === 1 ? c.plan.faultAfterSec : Math.min(c.plan.faultAfterSec, RETRY_FAULT_AFTER_SEC);
      if (!c.fired && INJECTED.has(kind) && job.state === JobState.JOB_STATE_RUNNING && a.startedAt && now >= a.startedAt.getTime() + after * 1000) {
        c.fired = true;
        const target = a.placement[c.plan.faultRank % a.placement.length]!;
        const gpu = target.gpuIndices[c.plan.gpuSlot % target.gpuIndices.length]!;
        if (kind.startsWith('xid')) {
          const xid = Number(kind.slice(3));
          const breaks = BREAKING_XIDS.has(xid) && !broken.has(target.node);
          if (breaks) run.brokenSince.set(target.node, Date.now());
          c.fired = await shootXid(ci, job, a, target.node, gpu, xid, true);
          if (breaks && c.fired) broken.set(target.node, xid);
          else if (breaks) run.brokenSince.delete(target.node);
        } else if (kind === 'agent-kill') {
          const at = Date.now();
          run.kills.push({ node: target.node, at });
          count('agent-kill');
          note(`kill agent ${target.node} (under ${c.plan.name})`);
          await stack.agents[nodeIndex(target.node)]!.kill();
        } else {
          const args = kind === 'nfs-stall' ? ['nfs-stall', '--mount', '/mnt/datasets', '--duration', '20'] : ['link-flap', '--device', 'mlx5_0', '--duration', '5'];
          run.probes.push({ kind, chain: ci, jobId: job.id, attempt: a.number, node: target.node, at: Date.now() });
          await inject(stack, target.node, args);
          count(kind);
          note(`${kind} on ${target.node} (under ${c.plan.name})`);
        }
      }
    }

    // The hardware model: a rank that starts on a broken node is hit by the same XID again.
    for (const [ci, c] of run.chains.entries()) {
      const id = c.jobIds.at(-1);
      const job = id ? run.jobs.get(id) : undefined;
      if (!job || (job.state !== JobState.JOB_STATE_SCHEDULED && job.state !== JobState.JOB_STATE_RUNNING)) continue;
      const a = current(job)!;
      for (const p of a.placement) {
        const xid = broken.get(p.node);
        const key = `${job.id}#${a.number}#${p.node}`;
        if (xid === undefined || shotKeys.has(key)) continue;
        if (a.ranks.find((r) => r.rank === p.rank)?.phase !== RankPhase.RANK_PHASE_STARTED) continue;
        shotKeys.add(key);
        const primary = run.xids.some((x) => x.primary && x.jobId === job.id && x.attempt === a.number && x.node === p.node);
        if (!primary) await shootXid(ci, job, a, p.node, p.gpuIndices[0]!, xid, false);
      }
    }

    if (run.chains.every((c) => c.done)) break;
    if (Date.now() - run.startedAt > PHASE_TIMEOUT_MS) {
      run.timedOut = true;
      note('phase timeout: cancelling what is left');
      for (const c of run.chains.filter((x) => !x.done)) await client.cancelJob(c.jobIds.at(-1)!, 'benchmark phase timeout').catch(() => undefined);
      break;
    }
    await sleep(Math.max(0, TICK_MS - (Date.now() - now)));
  }
  run.endedAt = Date.now();
  run.wallMs = run.endedAt - run.startedAt;
  const page = await client.listJobs({ pageSize: 1000 });
  for (const j of page.jobs) run.jobs.set(j.id, j);
  // The stack is fresh: an hour's window holds the whole phase.
  run.report = await client.getOperationsReport(3600).catch((err: unknown) => {
    console.log(`[${policy}] gantry report failed: ${(err as Error).message}`);
    return undefined;
  });
  console.log(`[${policy}] workload done in ${(run.wallMs / 1000).toFixed(1)} s${run.timedOut ? ' (PHASE TIMEOUT)' : ''}`);
  return run;
}

// ---- analysis ---------------------------------------------------------------------------

type CauseKind = 'xid-node' | 'xid94' | 'agent-kill' | 'app-crash' | 'none';

interface Cause { kind: CauseKind; node: string; at: number; xid?: number }

interface Try {
  chain: number;
  job: Job;
  attempt: Attempt;
  gpus: number;
  ok: boolean;
  failed: boolean;
  end: number | undefined;
  causes: Cause[];
  /** A node of the placement that was already broken or dead when the try was placed. */
  landedOnBad: string | undefined;
}

interface Episode { chain: number; cause: CauseKind; ms: number; gpus: number }

interface Metrics {
  policy: Policy;
  run: PhaseRun;
  chains: number;
  hitChains: number;
  hitChainsOk: number;
  allChainsOk: number;
  tries: number;
  episodes: Episode[];
  gpuSecLost: number;
  /** GPUs x first-try length of the chains that ended FAILED: work the user must run again by hand. */
  gpuSecUndelivered: number;
  retries: number;
  retriesOnBad: number;
  /** Gantry: retries placed on a node the job itself had excluded (must be 0). */
  retriesOnExcluded: number;
  blame: { checked: number; correct: number; wrong: string[] };
  /** XID 94 or rank crashes Gantry classed or blamed otherwise than expected. */
  misclassified: string[];
  wrongExclusions: number;
  contained: { checked: number; correct: number };
  app: { checked: number; correct: number };
  probes: { total: number; clean: number };
  unexplained: number;
  unexplainedWhat: string[];
  grades: Map<string, number>;
  sparesTaken: number;
  sparesBad: number;
  bug: { tries: number; gpuSec: number; state: string };
}

const ms = (d: Date | undefined) => d?.getTime();

/** Since when the benchmark had broken (XID) or killed the node, if it had. */
function badSince(run: PhaseRun, node: string): number | undefined {
  const times = [run.brokenSince.get(node), ...run.kills.filter((k) => k.node === node).map((k) => k.at)].filter((x): x is number => x !== undefined);
  return times.length > 0 ? Math.min(...times) : undefined;
}

function triesOf(run: PhaseRun): Try[] {
  const out: Try[] = [];
  run.chains.forEach((c, ci) => {
    for (const id of c.jobIds) {
      const job = run.jobs.get(id)!;
      for (const attempt of [...job.attempts].sort((a, b) => a.number - b.number)) {
        const isCurrent = attempt.number === job.attempt;
        const ok = isCurrent && job.state === JobState.JOB_STATE_SUCCEEDED;
        const failed = !ok && (!isCurrent || job.state === JobState.JOB_STATE_FAILED || job.state === JobState.JOB_STATE_CANCELLED);
        const rankEnds = attempt.ranks.map((r) => ms(r.finishedAt)).filter((x): x is number => x !== undefined);
        const end = ms(attempt.finishedAt) ?? (rankEnds.length ? Math.max(...rankEnds) : undefined) ?? ms(job.finishedAt);
        const scheduled = ms(attempt.scheduledAt) ?? 0;
        const causes: Cause[] = [];
        for (const x of run.xids.filter((s) => s.jobId === id && s.attempt === attempt.number)) {
          causes.push({ kind: BREAKING_XIDS.has(x.xid) ? 'xid-node' : 'xid94', node: x.node, at: x.at, xid: x.xid });
        }
        for (const k of run.kills) {
          if (attempt.placement.some((p) => p.node === k.node) && k.at <= (end ?? Infinity)) causes.push({ kind: 'agent-kill', node: k.node, at: Math.max(k.at, scheduled) });
        }
        if (c.plan.fault === 'rank-crash' || c.plan.fault === 'app-bug') {
          for (const r of attempt.ranks) {
            if ((r.exitCode ?? 0) !== 0 && !r.signal) causes.push({ kind: 'app-crash', node: attempt.placement.find((p) => p.rank === r.rank)?.node ?? '', at: ms(r.errorTime) ?? ms(r.finishedAt)! });
          }
        }
        // A failure the benchmark recorded no shot for, on a node it had broken, that Gantry
        // pins on that node (a re-injected XID that reached the GPU's next owner in a race, or
        // the node re-registering without its lost GPU): the broken hardware's doing.
        const f = attempt.failure;
        if (failed && causes.length === 0 && f?.node && (run.brokenSince.get(f.node) ?? Infinity) < (end ?? Infinity)) {
          causes.push({ kind: 'xid-node', node: f.node, at: ms(f.time) ?? end ?? scheduled });
        }
        causes.sort((a, b) => a.at - b.at);
        const landedOnBad = attempt.placement.map((p) => p.node).find((n) => (badSince(run, n) ?? Infinity) < scheduled);
        out.push({ chain: ci, job, attempt, gpus: attempt.placement.reduce((s, p) => s + p.gpuIndices.length, 0), ok, failed, end, causes, landedOnBad });
      }
    }
  });
  return out;
}

function analyse(run: PhaseRun): Metrics {
  const all = triesOf(run);
  const bugChains = new Set(run.chains.map((c, i) => (c.plan.fault === 'app-bug' ? i : -1)).filter((i) => i >= 0));
  const tries = all.filter((x) => !bugChains.has(x.chain));
  const bad = new Set([...run.brokenSince.keys(), ...run.kills.map((k) => k.node)]);
  const m: Metrics = {
    policy: run.policy, run, chains: run.chains.length - bugChains.size, hitChains: 0, hitChainsOk: 0, allChainsOk: 0, tries: tries.length,
    episodes: [], gpuSecLost: 0, gpuSecUndelivered: 0, retries: 0, retriesOnBad: 0, retriesOnExcluded: 0,
    blame: { checked: 0, correct: 0, wrong: [] }, misclassified: [], wrongExclusions: 0, contained: { checked: 0, correct: 0 }, app: { checked: 0, correct: 0 },
    probes: { total: run.probes.length, clean: 0 }, unexplained: 0, unexplainedWhat: [], grades: new Map(), sparesTaken: 0, sparesBad: 0, bug: { tries: 0, gpuSec: 0, state: '-' },
  };
  const gpuSec = (x: Try) => x.attempt.placement.reduce((s, p) => {
    const r = x.attempt.ranks.find((q) => q.rank === p.rank);
    const end = ms(r?.finishedAt) ?? x.end ?? run.endedAt;
    return s + p.gpuIndices.length * Math.max(0, end - (ms(x.attempt.scheduledAt) ?? end)) / 1000;
  }, 0);

  run.chains.forEach((c, ci) => {
    if (bugChains.has(ci)) return;
    const mine = tries.filter((x) => x.chain === ci);
    const last = run.jobs.get(c.jobIds.at(-1)!)!;
    const succeeded = last.state === JobState.JOB_STATE_SUCCEEDED;
    if (succeeded) m.allChainsOk++;
    if (last.state === JobState.JOB_STATE_FAILED) m.gpuSecUndelivered += c.plan.nodes * c.plan.gpusPerNode * c.plan.workSec;
    if (mine.some((x) => x.failed)) {
      m.hitChains++;
      if (succeeded) m.hitChainsOk++;
    }
    let open: { at: number; cause: CauseKind; gpus: number } | undefined;
    for (const [i, x] of mine.entries()) {
      if (i > 0) {
        m.retries++;
        if (x.landedOnBad) m.retriesOnBad++;
        if (x.attempt.placement.some((p) => x.attempt.excludedNodes.includes(p.node))) m.retriesOnExcluded++;
      }
      if (open && x.attempt.startedAt && !x.landedOnBad) {
        m.episodes.push({ chain: ci, cause: open.cause, ms: x.attempt.startedAt.getTime() - open.at, gpus: open.gpus });
        open = undefined;
      }
      if (x.failed) {
        m.gpuSecLost += gpuSec(x);
        const cause = x.causes[0];
        if (!cause && !(run.timedOut && x === mine.at(-1))) {
          m.unexplained++;
          m.unexplainedWhat.push(`${x.job.spec?.name} attempt ${x.attempt.number} on ${x.attempt.placement.map((p) => p.node).join(',')}: ${x.attempt.failure?.reason ?? x.job.reason}`);
        }
        open ??= { at: cause?.at ?? x.end ?? run.endedAt, cause: cause?.kind ?? 'none', gpus: x.gpus };
      }
    }
    if (open) m.episodes.push({ chain: ci, cause: open.cause, ms: Infinity, gpus: open.gpus });
  });

  for (const x of all.filter((y) => bugChains.has(y.chain))) {
    m.bug.tries++;
    m.bug.gpuSec += gpuSec(x);
    m.bug.state = jobStateName(run.jobs.get(run.chains[x.chain]!.jobIds.at(-1)!)!.state);
  }

  // Attribution: Gantry's own record against what the benchmark broke.
  if (run.policy === 'gantry') {
    for (const x of tries.filter((y) => y.failed && y.causes.length > 0)) {
      const f = x.attempt.failure;
      const excluded = new Set(x.job.excludedNodes);
      const nodeCauses = x.causes.filter((k) => k.kind === 'xid-node' || k.kind === 'agent-kill');
      if (nodeCauses.length > 0) {
        m.blame.checked++;
        const right = f?.failureClass === FailureClass.FAILURE_CLASS_NODE_FAULT && nodeCauses.some((k) => k.node === f.node) && excluded.has(f.node);
        if (right) m.blame.correct++;
        else m.blame.wrong.push(`${x.job.spec?.name} attempt ${x.attempt.number}: broke ${nodeCauses.map((k) => k.node).join('/')}, blamed ${f?.node || '-'} (${f ? failureClassName(f.failureClass) : 'no failure'})`);
      } else {
        const cause = x.causes[0]!;
        const want = cause.kind === 'xid94' ? FailureClass.FAILURE_CLASS_GPU_CONTAINED : FailureClass.FAILURE_CLASS_APPLICATION;
        const tally = cause.kind === 'xid94' ? m.contained : m.app;
        tally.checked++;
        if (f?.failureClass === want && !(excluded.has(cause.node) && !bad.has(cause.node))) tally.correct++;
        else m.misclassified.push(`${x.job.spec?.name} attempt ${x.attempt.number}: ${cause.kind} on ${cause.node}, recorded ${f ? `${failureClassName(f.failureClass)} on ${f.node || '-'}` : 'no failure'}, excluded ${x.job.excludedNodes.join(',') || '-'}`);
      }
    }
    for (const c of run.chains) {
      const job = run.jobs.get(c.jobIds.at(-1)!)!;
      m.wrongExclusions += job.excludedNodes.filter((n) => !bad.has(n)).length;
    }
    for (const x of all) {
      if (x.attempt.grade === RecoveryGrade.RECOVERY_GRADE_UNSPECIFIED) continue;
      const g = recoveryGradeName(x.attempt.grade);
      m.grades.set(g, (m.grades.get(g) ?? 0) + 1);
      const spares = /took hot spares? ([\w.-]+(?:, [\w.-]+)*)/.exec(x.attempt.gradeReason)?.[1]?.split(', ') ?? [];
      m.sparesTaken += spares.length;
      m.sparesBad += spares.filter((n) => (badSince(run, n) ?? Infinity) < (ms(x.attempt.scheduledAt) ?? 0)).length;
    }
  }
  for (const p of run.probes) {
    const x = all.find((y) => y.job.id === p.jobId && y.attempt.number === p.attempt);
    if (x && (x.ok || x.causes.length > 0)) m.probes.clean++;
  }
  return m;
}

// ---- report -----------------------------------------------------------------------------

/** Nearest-rank quantile; Infinity (never recovered) sorts last. */
function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)]!;
}

const secs = (msv: number) => (Number.isNaN(msv) ? '-' : Number.isFinite(msv) ? `${(msv / 1000).toFixed(1)} s` : 'never');
const pct = (a: number, b: number) => (b === 0 ? '-' : `${a}/${b} (${((100 * a) / b).toFixed(0)}%)`);
const int = (n: number) => Math.round(n).toLocaleString('en-US');

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ')).join('\n');
}

function report(plan: JobPlan[], ms_: Metrics[], wallMs: number): void {
  const by = (p: Policy) => ms_.find((m) => m.policy === p);
  const g = by('gantry');
  const n = by('naive');
  const cols = [g, n].filter((x): x is Metrics => x !== undefined);
  const cell = (f: (m: Metrics) => string) => cols.map(f);
  const rec = (m: Metrics, q: number, kinds?: CauseKind[]) => quantile(m.episodes.filter((e) => !kinds || kinds.includes(e.cause)).map((e) => e.ms), q);
  const recN = (m: Metrics, kinds: CauseKind[]) => m.episodes.filter((e) => kinds.includes(e.cause)).length;

  const mix = new Map<string, number>();
  for (const p of plan) mix.set(p.fault, (mix.get(p.fault) ?? 0) + 1);
  console.log('');
  console.log(`== pnpm bench:recovery: seed ${SEED}, ${AGENTS} agents x ${GPUS_PER_AGENT} GPUs, heartbeat timeout ${HEARTBEAT_TIMEOUT_MS / 1000} s, ${plan.length} jobs (1-4 nodes x 4|8 GPUs) ==`);
  console.log(`  planned faults (one per job): ${[...mix].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const m of cols) {
    console.log(`  ${m.policy.padEnd(6)} injected: ${Object.entries(m.run.injected).map(([k, v]) => `${k} ${v}`).join(', ')}; broken nodes ${[...m.run.brokenSince.keys()].join(', ') || '-'}; dead ${m.run.kills.map((k) => k.node).join(', ') || '-'}`);
  }
  console.log(`  gantry: default retry policy, settle 1.5 s, backoff 1 s (x2, max 4 s, 20% jitter), ${SPARES} hot spares; rank-crash jobs opt in to retrying application errors`);
  console.log(`  naive : no Gantry recovery, no spares, no blame penalty; the benchmark resubmits a FAILED job at once, up to ${NAIVE_RETRIES} times`);
  console.log('          (it keeps Gantry\'s detection, an XID or lost node ends the job in seconds, and retries without backoff: generous to it)');
  console.log('');
  const rows: string[][] = [
    ['', ...cols.map((m) => m.policy)],
    ['fault -> all ranks running again, median', ...cell((m) => secs(rec(m, 0.5)))],
    ['fault -> all ranks running again, p99', ...cell((m) => secs(rec(m, 0.99)))],
    ['  p99 of the recovered episodes only', ...cell((m) => secs(quantile(m.episodes.filter((e) => Number.isFinite(e.ms)).map((e) => e.ms), 0.99)))],
    ['  episodes (recovered / never)', ...cell((m) => `${m.episodes.filter((e) => Number.isFinite(e.ms)).length} / ${m.episodes.filter((e) => !Number.isFinite(e.ms)).length}`)],
    ['  median, node XID 79/48/119', ...cell((m) => `${secs(rec(m, 0.5, ['xid-node']))} (n=${recN(m, ['xid-node'])})`)],
    ['  median, agent kill (node lost)', ...cell((m) => `${secs(rec(m, 0.5, ['agent-kill']))} (n=${recN(m, ['agent-kill'])})`)],
    ['  median, XID 94 (contained)', ...cell((m) => `${secs(rec(m, 0.5, ['xid94']))} (n=${recN(m, ['xid94'])})`)],
    ['  median, rank crash', ...cell((m) => `${secs(rec(m, 0.5, ['app-crash']))} (n=${recN(m, ['app-crash'])})`)],
    ['chain success, chains a fault hit', ...cell((m) => pct(m.hitChainsOk, m.hitChains))],
    ['chain success, all chains', ...cell((m) => pct(m.allChainsOk, m.chains))],
    ['tries (attempts or resubmissions)', ...cell((m) => String(m.tries))],
    ['retries placed on known-bad hardware', ...cell((m) => `${m.retriesOnBad} of ${m.retries}`)],
    ['  of which on a node the job had excluded', ...cell((m) => (m.policy === 'gantry' ? String(m.retriesOnExcluded) : 'n/a'))],
    ['GPU-seconds lost (failed tries)', ...cell((m) => int(m.gpuSecLost))],
    ['GPU-seconds of work never delivered (FAILED chains)', ...cell((m) => int(m.gpuSecUndelivered))],
    ['blamed node = faulty node (node faults)', ...cell((m) => (m.policy === 'gantry' ? pct(m.blame.correct, m.blame.checked) : 'n/a (no blame)'))],
    ['healthy nodes excluded', ...cell((m) => (m.policy === 'gantry' ? String(m.wrongExclusions) : 'n/a'))],
    ['XID 94 restarted without blame', ...cell((m) => (m.policy === 'gantry' ? pct(m.contained.correct, m.contained.checked) : 'n/a'))],
    ['rank crash classed application, no blame', ...cell((m) => (m.policy === 'gantry' ? pct(m.app.correct, m.app.checked) : 'n/a'))],
    ['NFS stall / link flap: no false recovery', ...cell((m) => pct(m.probes.clean, m.probes.total))],
    ['failures with no injected cause', ...cell((m) => String(m.unexplained))],
    ['deterministic bug: tries, GPU-s, final', ...cell((m) => `${m.bug.tries}, ${int(m.bug.gpuSec)}, ${m.bug.state}`)],
    ['workload wall time', ...cell((m) => `${(m.run.wallMs / 1000).toFixed(0)} s${m.run.timedOut ? ' TIMEOUT' : ''}`)],
  ];
  console.log(table(rows));
  if (g) {
    const grades = [...g.grades].map(([k, v]) => `${k} ${v}`).join(', ') || '-';
    console.log(`\n  gantry recovery grades: ${grades}; hot spares taken: ${g.sparesTaken} (already-broken nodes among them: ${g.sparesBad}); spares held idle: at most ${SPARES * GPUS_PER_AGENT} GPUs x ${(g.run.wallMs / 1000).toFixed(0)} s = ${int(SPARES * GPUS_PER_AGENT * g.run.wallMs / 1000)} GPU-s (not in "lost")`);
    for (const w of g.blame.wrong) console.log(`  WRONG BLAME: ${w}`);
    for (const w of g.misclassified) console.log(`  MISCLASSIFIED: ${w}`);
  }
  for (const m of cols) for (const w of m.unexplainedWhat) console.log(`  ${m.policy} FAILURE WITH NO INJECTED CAUSE: ${w}`);
  console.log('  chain = one job from submit to final state (the deterministic-bug job is not one). episode = from a fault to the chain running');
  console.log('  again on hardware not already known bad ("never" if it did not); p99 = nearest rank (the max below 100 episodes).');
  console.log('  GPU-seconds lost = per rank of every try that did not complete, GPUs x (rank end - try scheduled); not counted: the GPUs');
  console.log('  Gantry holds for a recovery from its settle window to the end of its backoff (seconds; the hot spares idle line is separate).');
  if (g && g.retriesOnBad > 0) {
    console.log(`  note: ${g.retriesOnBad} Gantry retries were placed on nodes the benchmark had already broken (blamed for another job, so not`);
    console.log('  excluded for this one; hot spares included): those retries fail again and spend the recovery budget.');
  }
  if (g) {
    const median = rec(g, 0.5);
    const p99 = rec(g, 0.99);
    const targets: [string, boolean, string][] = [
      ['fault -> running again, median < 15 s', median < 15_000, secs(median)],
      ['fault -> running again, p99 < 60 s', p99 < 60_000, secs(p99)],
      ['chains hit by a fault that succeed >= 90% (healthy capacity left)', g.hitChains > 0 && g.hitChainsOk / g.hitChains >= 0.9, pct(g.hitChainsOk, g.hitChains)],
      ['blamed node is the faulty one in 100% of injected node faults', g.blame.checked > 0 && g.blame.correct === g.blame.checked && g.wrongExclusions === 0, `${pct(g.blame.correct, g.blame.checked)}, ${g.wrongExclusions} healthy excluded`],
    ];
    console.log('\nTargets (Gantry):');
    for (const [what, ok, got] of targets) console.log(`  ${ok ? 'PASS' : '*** FAIL ***'}  ${what}: ${got}`);
    console.log('\ngantry report of the phase (GetOperationsReport) against what the benchmark injected:');
    for (const [what, ok, got] of reportChecks(g)) console.log(`  ${ok ? 'PASS' : '*** FAIL ***'}  ${what}: ${got}`);
  }
  console.log(`\nwall time ${(wallMs / 1000).toFixed(0)} s (stack start-up ${cols.map((m) => `${m.policy} ${(m.run.startupMs / 1000).toFixed(0)} s`).join(', ')})`);
  if (VERBOSE) {
    for (const m of cols) {
      console.log(`\n-- ${m.policy} episodes (ms): ${m.episodes.map((e) => `${chainName(m, e.chain)} ${e.cause} ${Number.isFinite(e.ms) ? e.ms : 'never'}`).join('; ')}`);
    }
  }
}

/**
 * The operations report must recover the phase's truth: the XIDs the benchmark injected, by
 * number; the retry chains (chains Gantry tried more than once; the deterministic-bug job is one
 * when a re-injected XID on a broken node made Gantry retry it) and how many succeeded; the
 * node-fault blames (failed tries ended by an injected node fault, every chain).
 */
function reportChecks(m: Metrics): [string, boolean, string][] {
  const r = m.run.report;
  if (!r) return [['report answered', false, 'no report']];
  const injected = new Map<number, number>();
  for (const x of m.run.xids) injected.set(x.xid, (injected.get(x.xid) ?? 0) + 1);
  const want = [...injected].sort((a, b) => a[0] - b[0]).map(([x, n]) => `${x}:${n}`).join(' ');
  const got = r.xidFailures.map((x) => [x.xid, x.events] as const).sort((a, b) => a[0] - b[0]).map(([x, n]) => `${x}:${n}`).join(' ');
  const all = triesOf(m.run);
  const retried = m.run.chains.filter((_, ci) => all.filter((x) => x.chain === ci).length > 1);
  const retriedOk = retried.filter((c) => m.run.jobs.get(c.jobIds.at(-1)!)?.state === JobState.JOB_STATE_SUCCEEDED).length;
  const blames = all.filter((x) => x.failed && x.causes.some((k) => k.kind === 'xid-node' || k.kind === 'agent-kill')).length;
  const c = r.retryChains!;
  return [
    ['XIDs by number (injected = reported)', want === got, `injected ${want || '-'}; report ${got || '-'}`],
    ['retry chains (chains tried more than once = report chains)', c.chains === retried.length, `benchmark ${retried.length}, report ${c.chains} over ${c.attempts} attempts`],
    ['chain success', c.succeeded === retriedOk && c.open === 0, `benchmark ${pct(retriedOk, retried.length)}, report ${c.succeeded}/${c.chains} (${(100 * c.successShare).toFixed(0)}% of ended); median ${c.retryIntervalMedianSeconds.toFixed(1)} s between retries`],
    ['node-fault blames (failed tries ended by an injected node fault)', r.exclusions!.blames === blames, `benchmark ${blames}, report ${r.exclusions!.blames}; exclusions ${r.exclusions!.total}, top 3 ${r.exclusions!.topNodes.map((n) => `${n.node} ${n.count}`).join(', ')} = ${(100 * r.exclusions!.top3Share).toFixed(0)}%`],
  ];
}

const chainName = (m: Metrics, chain: number) => m.run.chains[chain]!.plan.name;

async function main(): Promise<void> {
  const t0 = Date.now();
  const plan = makePlan(SEED);
  const policies: Policy[] = ONLY === 'gantry' || ONLY === 'naive' ? [ONLY] : ['gantry', 'naive'];
  const results: Metrics[] = [];
  for (const p of policies) {
    const phase = await runPhase(p, plan);
    if (process.env.BENCH_DUMP) writeFileSync(`${process.env.BENCH_DUMP}.${p}.json`, JSON.stringify({ ...phase, jobs: [...phase.jobs.values()].map((j) => Job.toJSON(j)), brokenSince: [...phase.brokenSince] }, null, 1));
    results.push(analyse(phase));
  }
  report(plan, results, Date.now() - t0);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the stack`);
    void (activeStack?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error('recovery benchmark failed:', err);
  process.exit(1);
});
