// The node health detector at work: once per window, on the leader, it reads what arrived
// since the last window (telemetry batches past each node's cursor, queued XIDs, operator
// decisions, heartbeats, running jobs and their output), advances the pure evaluator
// (../health) and acts on what it decided:
//   - node transitions (READY, SUSPECT, QUARANTINED, DRAINING) and conditions, each through the
//     node's compare-and-set path, so each is validated and published as a node event;
//   - a node that leaves service hands the jobs on it to recovery as a node fault;
//   - a hang or straggler hands its job to recovery, naming the node when one can be named.
// Then it stores the new state with the results in one transaction. Acting before storing
// makes a crash in between harmless: the next leader evaluates the same window again, and
// every action is idempotent (a node already in its state, a job already recovering).
import { Counter, Gauge, Histogram } from 'prom-client';
import { FailureClass, FaultSignal, JobState, NodeState, nodeStateName, type TelemetryBatch } from '@gantry/proto';
import { HealthStore, NodeTelemetryStore, decodeStoredBatch, type NodeRecord } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import {
  advanceHealthInSteps, emptyHealthState, parseHealthState, serializeHealthState,
  type HealthConfig, type HealthState, type JobInfo, type ProgressFinding,
} from '../health/index.js';
import { currentAttempt, liveRanks } from '../jobs/lifecycle.js';
import { mutateNode } from '../jobs/mutate.js';
import { signalAttempt, signalHolders } from '../recovery/triggers.js';
import { WakeableLoop } from '../wakeable-loop.js';
import type { HealthConfigCache } from './config-source.js';
import { applyHealthDecision } from './decisions.js';
import type { LogActivity } from './log-activity.js';
import { clusterHealth, nodeHealth } from './report.js';

/** A changed window length (health config) takes effect within this. */
const CONFIG_POLL_MS = 5_000;

/** At most this many batches per node and window (a window at a 1 s telemetry interval). */
const BATCHES_PER_WINDOW = 64;

/**
 * Nodes whose telemetry is read, decoded and evaluated together; the event loop runs other work
 * between steps. All 2,000 nodes at once took it 0.9 s in one stretch (10,000: several seconds,
 * longer than heartbeats may wait and close to the leader lease's TTL), and a window's decoded
 * batches were all alive at once (60,000 at 10,000 nodes, 6 each).
 */
const STEP_NODES = 250;

/** Stored batches decoded between two turns of the event loop (about 20 ms of decoding). */
const DECODE_SLICE = 128;

export class HealthMonitor extends WakeableLoop {
  private windowMs = 60_000;
  /**
   * When this leadership last evaluated a window. Until the next one is due, a pass returns
   * without reading the stored state: it was read and parsed every CONFIG_POLL_MS before, only
   * to learn that no window was due, which at 2,000 nodes took the event loop 0.3-0.7 s each
   * time (the state holds every node's baselines). Cleared on stop: another leader may evaluate
   * meanwhile.
   */
  private evaluatedAtMs: number | undefined;
  /**
   * The state this leadership last stored, with its JSON: when Redis still holds that JSON the
   * next window continues from the object instead of parsing it again (at 2,000 nodes a parse
   * took 0.3-0.7 s of event loop). Set only after a commit succeeded (the evaluation advances
   * the object in place), cleared on stop.
   */
  private stored: { json: string; state: HealthState } | undefined;
  private readonly telemetry: NodeTelemetryStore;
  private readonly evaluations: Histogram;
  private readonly transitions: Counter;
  private readonly quarantines: Counter;
  private readonly statuses: Gauge;
  private readonly sharedActive: Gauge;
  private readonly findings: Counter;

  constructor(private readonly ctx: SchedulerContext, private readonly store: HealthStore, private readonly configs: HealthConfigCache, private readonly logs: LogActivity) {
    super(() => Math.min(this.windowMs, CONFIG_POLL_MS));
    this.telemetry = new NodeTelemetryStore(ctx.redis);
    const registers = [ctx.metrics];
    this.evaluations = new Histogram({ name: 'gantry_health_evaluation_seconds', help: 'Duration of one health window: read, evaluate, act, store', registers, buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10] });
    this.transitions = new Counter({ name: 'gantry_health_transitions_total', help: 'Node state changes the health detector made', labelNames: ['to'], registers });
    this.quarantines = new Counter({ name: 'gantry_health_node_quarantines_total', help: 'Nodes the health detector quarantined, per node (repeat offenders)', labelNames: ['node'], registers });
    this.statuses = new Gauge({ name: 'gantry_health_nodes', help: 'Nodes by the health status the detector gave them at its latest window', labelNames: ['status'], registers });
    this.sharedActive = new Gauge({ name: 'gantry_health_shared_faults_active', help: 'Storage targets and fabric segments flagged as a shared fault', labelNames: ['kind'], registers });
    this.findings = new Counter({ name: 'gantry_health_findings_total', help: 'Hangs and stragglers found in running jobs', labelNames: ['kind'], registers });
  }

  override start(): void {
    this.logs.start();
    super.start();
  }

  override stop(): void {
    this.evaluatedAtMs = undefined;
    this.stored = undefined;
    super.stop();
    this.logs.stop();
  }

  protected async pass(): Promise<boolean> {
    await this.evaluateWindow(Date.now());
    return false;
  }

  protected onError(err: unknown): void {
    this.ctx.log.warn({ err: (err as Error).message }, 'health window failed');
  }

  /** Evaluates one window if one is due (windows are config.windowSec apart). */
  async evaluateWindow(nowMs: number): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    if (epoch === 0) return;
    const config = await this.configs.get();
    this.windowMs = config.windowSec * 1000;
    const last = this.evaluatedAtMs;
    if (last !== undefined && nowMs - last < this.windowMs && nowMs >= last) {
      this.wakeAt(last + this.windowMs);
      return;
    }
    const loaded = await this.store.load();
    const kept = this.stored;
    const state = kept && kept.json === loaded.stateJson ? kept.state : this.parseState(loaded.stateJson);
    if (state.lastEvalMs !== undefined && nowMs - state.lastEvalMs < this.windowMs && nowMs >= state.lastEvalMs) {
      this.evaluatedAtMs = state.lastEvalMs;
      this.wakeAt(state.lastEvalMs + this.windowMs);
      return;
    }
    // From here the evaluation advances `state` in place: kept only once stored again.
    this.stored = undefined;
    const end = this.evaluations.startTimer();
    const records = await ctx.nodes.list();
    const since = (name: string) => loaded.cursors.get(name) ?? nowMs - this.windowMs;
    const cursors = new Map<string, number>();
    let batchCount = 0;
    // Each step's nodes at once (ioredis pipelines the reads: a few round trips per step, not
    // two per node in turn), read and decoded when the evaluation comes to them.
    const batchesOf = async (names: readonly string[]): Promise<TelemetryBatch[]> => {
      const fresh = await Promise.all(names.map((name) => this.telemetry.sinceRaw(name, since(name), BATCHES_PER_WINDOW)));
      const out: TelemetryBatch[] = [];
      let decoded = 0;
      for (const [i, name] of names.entries()) {
        for (const raw of fresh[i]!) {
          const b = decodeStoredBatch(raw);
          if (b) {
            out.push(b);
            cursors.set(name, b.time?.getTime() ?? since(name));
          }
          // Decoding is most of a window's CPU (about 170 us a batch): a step's nodes may bring
          // thousands, so other work runs between every DECODE_SLICE of them.
          if (++decoded % DECODE_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      }
      batchCount += out.length;
      return out;
    };
    const [xids, operator, jobs] = await Promise.all([this.store.pendingXids(), this.store.pendingOperator(), this.runningJobs()]);
    const previousNodes = Object.keys(state.nodes);
    const ev = await advanceHealthInSteps(state, {
      nowMs, batches: [], xids, operator, jobs,
      heartbeats: Object.fromEntries(records.filter((r) => r.heartbeatMs > 0).map((r) => [r.node.name, { lastSeenMs: r.heartbeatMs }])),
      // No registered inventory: the agent re-registers without a GPU that left it, so the
      // detector learns each node's GPUs from the batches and holds the node when one vanishes.
      nodes: records.map((r) => ({ name: r.node.name, leafSwitch: r.node.topology?.leafSwitch || undefined })),
    }, config, { size: STEP_NODES, batchesOf, pause: () => new Promise((resolve) => setImmediate(resolve)) });

    const at = new Date(nowMs);
    const byName = new Map(records.map((r) => [r.node.name, r]));
    for (const d of ev.nodes) await this.applyDecision(byName.get(d.node), d, config, at, epoch);
    for (const f of ev.findings) await this.handToRecovery(f);

    if (ctx.epoch() !== epoch) return;
    const healths = ev.nodes.map((d) => nodeHealth(d, ev.state, config, at));
    const stateJson = serializeHealthState(ev.state);
    await this.store.commit({
      stateJson, cursors, xidsConsumed: xids.length, operatorConsumed: operator.length,
      nodes: healths, removedNodes: previousNodes.filter((n) => !byName.has(n)),
      cluster: clusterHealth(ev, healths, await this.store.cluster(), at),
    });
    this.statuses.reset();
    for (const d of ev.nodes) this.statuses.inc({ status: d.status });
    this.sharedActive.reset();
    for (const s of ev.sharedFaults) if (s.active) this.sharedActive.inc({ kind: s.kind });
    this.logs.retain(new Set(jobs.map((j) => j.id)));
    this.stored = { json: stateJson, state: ev.state };
    this.evaluatedAtMs = nowMs;
    this.wakeAt(nowMs + this.windowMs);
    const seconds = end();
    ctx.log.debug({ nodes: ev.nodes.length, batches: batchCount, xids: xids.length, transitions: ev.transitions.length, findings: ev.findings.length, seconds }, 'health window evaluated');
  }

  private parseState(json: string | undefined): HealthState {
    if (!json) return emptyHealthState();
    try {
      return parseHealthState(json);
    } catch (err) {
      // Baselines are relearned; holds are not lost for good: the nodes keep their states.
      this.ctx.log.error({ err: (err as Error).message }, 'stored health state unreadable; starting afresh');
      return emptyHealthState();
    }
  }

  private async runningJobs(): Promise<JobInfo[]> {
    const [recs] = await this.ctx.jobCache.inStates([JobState.JOB_STATE_RUNNING]);
    const nccl = this.logs.takeNcclTimeouts();
    return recs.map(({ job }) => {
      const info: JobInfo = { id: job.id, nodes: [...new Set(liveRanks(job).map((p) => p.node))] };
      const lastLog = this.logs.lastLogMs(job.id);
      if (lastLog !== undefined) info.lastLogMs = lastLog;
      const started = currentAttempt(job)?.startedAt?.getTime();
      if (started !== undefined) info.startedMs = started;
      const lines = nccl.get(job.id);
      if (lines) info.ncclTimeouts = lines;
      return info;
    });
  }

  private async applyDecision(rec: NodeRecord | undefined, d: Parameters<typeof applyHealthDecision>[1], config: HealthConfig, at: Date, epoch: number): Promise<void> {
    if (!rec || !applyHealthDecision(rec.node, d, config, at)) return;
    let evicted: NodeRecord | undefined;
    let reason = '';
    const committed = await mutateNode(this.ctx.nodes, rec.node.name, (r) => {
      const u = applyHealthDecision(r.node, d, config, at);
      if (!u) return undefined;
      reason = u.reason;
      evicted = u.evictJobs ? r : undefined;
      return { next: u.next, reason: u.reason, epoch };
    });
    if (committed && committed.node.state !== rec.node.state) {
      this.transitions.inc({ to: nodeStateName(committed.node.state) });
      if (committed.node.state === NodeState.NODE_STATE_QUARANTINED) this.quarantines.inc({ node: rec.node.name });
      this.ctx.log.warn({ node: rec.node.name, from: nodeStateName(rec.node.state), to: nodeStateName(committed.node.state), score: d.score, reason }, 'node health transition');
    }
    if (evicted && evicted.allocations.length > 0) {
      const signal = FaultSignal.create({ kind: 'health', node: rec.node.name, detail: `quarantined by the health detector: ${reason}`, time: at, failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT });
      await signalHolders(this.ctx, evicted.allocations, signal, `node ${rec.node.name} quarantined: ${reason}`);
    }
  }

  /** A hang or straggler ends the job's attempt: recovery restarts it (without the node when one is named). */
  private async handToRecovery(f: ProgressFinding): Promise<void> {
    this.findings.inc({ kind: f.kind });
    const rec = await this.ctx.jobs.get(f.job);
    if (!rec) return;
    const node = f.node ?? liveRanks(rec.job)[0]?.node;
    if (!node) return;
    const failureClass = f.cause ? FailureClass.FAILURE_CLASS_INFRASTRUCTURE : f.node ? FailureClass.FAILURE_CLASS_NODE_FAULT : FailureClass.FAILURE_CLASS_HANG;
    const who = f.kind === 'straggler' ? `${f.node} is a straggler: ` : f.node ? `hang blamed on ${f.node}: ` : f.cause ? 'hang: ' : '';
    const detail = `${who}${f.evidence.join('; ')}`;
    this.ctx.log.warn({ job: f.job, kind: f.kind, node: f.node, cause: f.cause }, 'job stopped making progress');
    await signalAttempt(this.ctx, f.job, undefined, FaultSignal.create({ kind: f.kind, node, detail, time: new Date(f.detectedAtMs), failureClass }), detail);
  }
}
