// Node membership: registration, heartbeats, LOST detection, and reconciliation of what an
// agent runs with what the scheduler wants (level-triggered: every heartbeat re-checks).
// Heartbeats are taken in and their times recorded by a HeartbeatFeed (in production on the
// agent intake thread: intake-thread.ts); this registry gets what each one reported.
import { randomUUID } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import { Counter, Gauge, Histogram } from 'prom-client';
import {
  AgentRank, FailureClass, FaultSignal, JobState, Node, NodeEvent, NodeHeartbeat, NodeHostEvent, NodeState, RankPhase, RegisterNodeRequest, RegisterNodeResponse, StopRank, type GpuAllocation, type GpuDevice, type Job,
} from '@gantry/proto';
import { decode, encode, subjects, SUBJECT_TOKEN } from '@gantry/bus';
import { allocationOwner, NodeTelemetryStore, type GpuRef, type NodeRecord } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { currentAttempt, isActive, liveRanks, markRanksLost, wantsRank } from '../jobs/lifecycle.js';
import { afterFaultSignal, recoveringReason, signalHolders, withFaultSignal } from '../recovery/triggers.js';
import { mutateJob } from '../jobs/mutate.js';
import { dispatchAssignments } from '../dispatch/dispatcher.js';
import { AgentMessageGuard } from './message-guard.js';
import { HeartbeatRecorder, reconcileInputs, type HeartbeatFeed, type HeartbeatSink, type RecordedHeartbeat } from './heartbeat-recorder.js';

/** States an operator or health decision put a node in: it returns to them, not to READY. */
const HELD_OUT = new Set([NodeState.NODE_STATE_QUARANTINED, NodeState.NODE_STATE_DRAINING, NodeState.NODE_STATE_DRAINED, NodeState.NODE_STATE_SUSPECT]);

/** The state a node returns to when its agent is heard from again. */
export function returningState(node: Node): NodeState {
  const held = node.state === NodeState.NODE_STATE_LOST ? node.stateBeforeLost : node.state;
  return HELD_OUT.has(held) ? held : NodeState.NODE_STATE_READY;
}

/** GPUs in one inventory and not the other, by index and UUID (a GPU swapped in place is both). */
export function inventoryChange(before: readonly GpuDevice[], now: readonly GpuDevice[]): { gone: GpuDevice[]; added: GpuDevice[] } {
  const key = (g: GpuDevice) => `${g.index}/${g.uuid}`;
  const was = new Set(before.map(key));
  const is = new Set(now.map(key));
  return { gone: before.filter((g) => !is.has(key(g))), added: now.filter((g) => !was.has(key(g))) };
}

/** "GPU 3 (GPU-8f…) is gone from node-7's inventory": the fault signal's evidence and the node event's reason. */
export function missingGpuDetail(node: string, gpu: GpuDevice): string {
  return `GPU ${gpu.index} (${gpu.uuid || gpu.pciBusId || 'unknown'}) is gone from ${node}'s inventory`;
}

/** The node event for a registration whose GPU list changed; undefined when it did not. */
export function inventoryChangeReason(node: string, change: { gone: GpuDevice[]; added: GpuDevice[] }): string | undefined {
  const parts = [
    ...change.gone.map((g) => missingGpuDetail(node, g)),
    ...change.added.map((g) => `GPU ${g.index} (${g.uuid || g.pciBusId || 'unknown'}) is back in ${node}'s inventory`),
  ];
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/**
 * Registrations handled at once. Each is a few Redis round trips; a flood (a broken or hostile
 * agent) beyond this is dropped, not queued without bound in memory. Agents retry registration.
 */
const MAX_IN_FLIGHT = 256;

/** Nodes reconciled together: one read of their jobs (through the job copy). */
const RECONCILE_BATCH = 2_000;

/**
 * A node whose heartbeat and record are unchanged since a reconcile that found nothing to do
 * is not reconciled again (its jobs are not even read: reconcileInputs says why) until this
 * many heartbeats have been skipped; then it is, whatever the fingerprint says: the
 * level-triggered backstop re-sends a lost stop or assignment within this many intervals (20 s
 * at the default 2 s).
 */
const RECONCILE_EVERY = 10;

/**
 * Whether the job's current attempt has a rank placed on `node` that was assigned, has not
 * started and is not among the ranks the node's agent reports running (allocation owners):
 * dispatchAssignments would send it. A rank the agent runs got its assignment; its STARTED
 * event is on its way through JetStream. Sending the assignment again on every heartbeat until
 * that event was handled (every COMMAND_RESEND_MS per rank, signed, with a reply awaited) fed
 * a 5,000-node placement burst more work the slower the scheduler became.
 */
export function hasUnstartedRankOn(job: Job, node: string, reportedRunning: ReadonlySet<string> = new Set()): boolean {
  const a = currentAttempt(job);
  if (!a) return false;
  for (const r of a.ranks) {
    if (r.phase !== RankPhase.RANK_PHASE_ASSIGNED || reportedRunning.has(allocationOwner(job.id, a.number, r.rank))) continue;
    if (a.placement.some((p) => p.rank === r.rank && p.node === node)) return true;
  }
  return false;
}

/** A node's side of a reconcile: its name, record revision and GPU allocations. */
interface ReconciledNode {
  name: string;
  rev: number;
  allocations: GpuAllocation[];
}

/** States in which a silent node is declared LOST. */
const WATCHED = new Set([NodeState.NODE_STATE_READY, NodeState.NODE_STATE_SUSPECT, NodeState.NODE_STATE_DRAINING, NodeState.NODE_STATE_DRAINED, NodeState.NODE_STATE_QUARANTINED, NodeState.NODE_STATE_REGISTERING]);

export class NodeRegistry implements HeartbeatSink {
  private subs: Subscription[] = [];
  private lostTimer: NodeJS.Timeout | undefined;
  private electedAt = 0;
  private inFlight = 0;
  /** Takes heartbeats in and records their times; hands this registry what they report. */
  private readonly feed: HeartbeatFeed;
  /** Heartbeats recorded whose reconcile has not run yet, by node (latest only); and whether the reconcile loop runs. */
  private readonly toReconcile = new Map<string, RecordedHeartbeat>();
  private reconciling = false;
  /** Per node: the inputs of its last reconcile that found nothing to do, and heartbeats skipped since. */
  private readonly quiet = new Map<string, { fingerprint: string; skipped: number }>();

  private readonly events: NodeTelemetryStore;
  private readonly lost: Counter;
  private readonly overdue: Gauge;
  private readonly recordLag: Histogram;
  private readonly guard: AgentMessageGuard;

  /**
   * `feed` makes what takes heartbeats in, given where it hands them (this registry); by default
   * a HeartbeatRecorder on this thread, over the context's NATS and Redis connections.
   */
  constructor(private readonly ctx: SchedulerContext, feed?: (sink: HeartbeatSink) => HeartbeatFeed) {
    this.guard = AgentMessageGuard.of(ctx.metrics, ctx.log);
    this.feed = feed ? feed(this) : new HeartbeatRecorder({ nc: ctx.nc, nodes: ctx.nodes, log: ctx.log, guard: this.guard }, this);
    this.events = new NodeTelemetryStore(ctx.redis);
    this.lost = new Counter({ name: 'gantry_nodes_lost_total', help: 'Nodes declared LOST: no heartbeat for HEARTBEAT_TIMEOUT_MS', registers: [ctx.metrics] });
    this.overdue = new Gauge({ name: 'gantry_nodes_heartbeat_overdue', help: 'Nodes without a heartbeat for longer than HEARTBEAT_TIMEOUT_MS (LOST ones included), at the leader\'s latest check', registers: [ctx.metrics] });
    // Apart from the agent's send time: what the scheduler itself adds once a heartbeat reached
    // the intake thread's event loop (the batch window, the script call, waiting behind other
    // heartbeats), as against delivery (NATS, a busy event loop not reading its socket).
    this.recordLag = new Histogram({ name: 'gantry_heartbeat_record_lag_seconds', help: 'From a heartbeat\'s arrival at the scheduler to its time recorded in Redis', registers: [ctx.metrics], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5] });
  }

  /** Starts handling registrations and heartbeats as leader; resolves once heartbeats are subscribed to. */
  async start(): Promise<void> {
    const { ctx } = this;
    this.electedAt = Date.now();
    // Queue groups: with several replicas subscribed, each message is handled once.
    this.subs.push(ctx.nc.subscribe(subjects.agentRegisterAll, {
      queue: 'scheduler',
      callback: (err, msg) => {
        if (err) return;
        if (this.inFlight >= MAX_IN_FLIGHT) {
          this.guard.drop('register', 'overload', { subject: msg.subject });
          msg.respond(encode(RegisterNodeResponse, { accepted: false, message: 'scheduler busy; retry', heartbeatIntervalMs: 0 }));
          return;
        }
        this.inFlight++;
        void this.register(msg.data, msg.subject).then(
          (res) => msg.respond(encode(RegisterNodeResponse, res)),
          (e: unknown) => {
            ctx.log.warn({ err: (e as Error).message.slice(0, 300) }, 'registration failed');
            msg.respond(encode(RegisterNodeResponse, { accepted: false, message: (e as Error).message.slice(0, 300), heartbeatIntervalMs: 0 }));
          },
        ).finally(() => this.inFlight--);
      },
    }));
    this.lostTimer = setInterval(() => void this.detectLost().catch((e: unknown) => ctx.log.warn({ err: (e as Error).message }, 'lost-node check failed')), 500);
    await this.feed.lead(ctx.epoch());
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    clearInterval(this.lostTimer);
    void this.feed.lead(0);
    this.toReconcile.clear();
    // A later leadership decides everything again (another replica may have led in between).
    this.quiet.clear();
  }

  /** A registration on `subject` (agentRegister of the sending node). */
  async register(data: Uint8Array, subject: string): Promise<RegisterNodeResponse> {
    const { ctx } = this;
    const req = decode(RegisterNodeRequest, data, 'RegisterNodeRequest');
    if (!SUBJECT_TOKEN.test(req.node)) throw new Error(`node name ${JSON.stringify(req.node.slice(0, 64))} is invalid`);
    if (!this.guard.sameNode('register', subject, req.node)) throw new Error(`registration for node ${req.node} sent on another node's subject`);
    const epoch = ctx.epoch();
    if (epoch === 0) throw new Error('not the leader');
    if (req.highestEpoch > epoch) ctx.agentEpoch(req.highestEpoch);
    // Nothing a heartbeat left of this node outlives its registration (a record written anew,
    // e.g. after Redis lost it, starts again at revision 1; the intake thread's copy of it is
    // by revision and registration time).
    this.quiet.delete(req.node);
    const prev = await ctx.nodes.get(req.node);
    const now = new Date();
    // A node comes back READY unless an operator or health decision holds it out.
    const state = prev ? returningState(prev.node) : NodeState.NODE_STATE_READY;
    const next = Node.create({
      ...(prev?.node ?? {}),
      name: req.node,
      state,
      address: req.address,
      gpus: req.gpus,
      topology: req.topology,
      labels: req.labels,
      agentVersion: req.agentVersion,
      deviceBackend: req.deviceBackend,
      registeredAt: now,
      stateBeforeLost: NodeState.NODE_STATE_UNSPECIFIED,
    });
    const reason = !prev ? 'registered' : prev.node.state === NodeState.NODE_STATE_LOST ? 'agent reconnected' : 're-registered';
    // An agent that does not say when it started: its predecessor's buffered reports are judged by the time the scheduler heard of it.
    const instanceSinceMs = req.instanceStartedAt?.getTime() ?? now.getTime();
    const rec = await ctx.nodes.commit({ prev, next, reason, epoch, heartbeatMs: now.getTime(), instanceId: req.instanceId, instanceSinceMs });
    ctx.log.info({ node: req.node, gpus: req.gpus.length, state: NodeState[state], ranks: req.ranks.length }, 'node registered');
    if (prev) await this.recordInventoryChange(rec.node, prev.node.gpus, req.gpus);
    await this.recoverJobsOnMissingGpus(rec.node.name, prev?.node.gpus ?? [], req.gpus, prev?.allocations ?? []);
    await this.reconcile(rec, req.ranks);
    ctx.kick();
    return RegisterNodeResponse.create({ accepted: true, message: reason, heartbeatIntervalMs: ctx.settings.heartbeatIntervalMs });
  }

  /** Closes the heartbeat feed (the intake thread and its connections): at shutdown. */
  close(): Promise<void> {
    return this.feed.close();
  }

  /**
   * Heartbeats whose times the feed recorded (their nodes registered to the instance that sent
   * them). A node heard from again after it was declared LOST returns to the state it was in;
   * every node's reconcile is queued (reconcileSoon), apart from the recording: reading a
   * node's jobs and deciding takes longer than recording the times, and no time may wait for it.
   */
  recorded(beats: RecordedHeartbeat[], lagsSec: number[]): void {
    const { ctx } = this;
    const epoch = ctx.epoch();
    if (epoch === 0) return;
    for (const lag of lagsSec) this.recordLag.observe(lag);
    let highest = 0;
    const returning: string[] = [];
    for (const b of beats) {
      highest = Math.max(highest, b.highestEpoch);
      if (b.state === NodeState.NODE_STATE_LOST) returning.push(b.node);
    }
    if (highest > epoch) ctx.agentEpoch(highest);
    if (returning.length > 0) void this.bringBack(returning, epoch).catch((e: unknown) => ctx.log.warn({ err: (e as Error).message.slice(0, 300), nodes: returning.length }, 'could not bring nodes back'));
    this.reconcileSoon(beats);
  }

  /** LOST nodes whose agents heartbeat again: back to the state they were in before (READY unless held out). */
  private async bringBack(names: readonly string[], epoch: number): Promise<void> {
    const { ctx } = this;
    const now = Date.now();
    let back = 0;
    for (const rec of await ctx.nodes.getMany(names)) {
      if (rec.node.state !== NodeState.NODE_STATE_LOST) continue;
      await ctx.nodes.commit({ prev: rec, next: { ...rec.node, state: returningState(rec.node), stateBeforeLost: NodeState.NODE_STATE_UNSPECIFIED }, reason: 'heartbeats resumed', epoch, heartbeatMs: now });
      back++;
    }
    if (back > 0) ctx.kick();
  }

  /**
   * Queues reconciles of these nodes for the reconcile loop, one per node at most (a newer
   * heartbeat's replaces one still waiting: only the latest ranks and record matter), so a
   * loop that falls behind coalesces them instead of piling them up.
   */
  private reconcileSoon(beats: readonly RecordedHeartbeat[]): void {
    for (const b of beats) this.toReconcile.set(b.node, b);
    if (this.reconciling) return;
    this.reconciling = true;
    void this.reconcileLoop();
  }

  private async reconcileLoop(): Promise<void> {
    try {
      while (this.toReconcile.size > 0) {
        const batch: RecordedHeartbeat[] = [];
        for (const [node, b] of this.toReconcile) {
          this.toReconcile.delete(node);
          // Unchanged since a reconcile that found nothing to do: nothing to decide (up to
          // RECONCILE_EVERY times), and nothing read or decoded.
          const quiet = this.quiet.get(node);
          if (quiet && quiet.fingerprint === b.fingerprint && quiet.skipped < RECONCILE_EVERY) {
            quiet.skipped++;
            continue;
          }
          batch.push(b);
          if (batch.length >= RECONCILE_BATCH) break;
        }
        if (batch.length === 0) continue;
        try {
          // The node's side as the intake thread read it with the heartbeat (no second read).
          const reported = batch.map((b) => ({ node: { name: b.node, rev: b.rev, allocations: b.allocations }, ranks: decode(NodeHeartbeat, b.encoded, 'NodeHeartbeat').ranks }));
          const jobs = await this.jobsOf(reported.flatMap(({ node, ranks }) => [...ranks.map((r) => r.jobId), ...node.allocations.map((a) => a.jobId)]));
          for (const { node, ranks } of reported) {
            void this.reconcileWith(node, ranks, jobs).catch((e: unknown) => this.ctx.log.warn({ node: node.name, err: (e as Error).message.slice(0, 300) }, 'reconcile failed'));
          }
        } catch (e) {
          // Level-triggered: the next heartbeats of these nodes queue them again.
          this.ctx.log.warn({ err: (e as Error).message.slice(0, 300), nodes: batch.length }, 'reconciles not done');
        }
      }
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * A registration whose GPU list changed (the agent fingerprints periodically: a GPU fell off
   * the bus, or came back after a reboot) goes into the node's event log, beside its XIDs. The
   * state does not change, so it is logged as a transition to the same state.
   */
  private async recordInventoryChange(node: Node, before: GpuDevice[], now: GpuDevice[]): Promise<void> {
    const reason = inventoryChangeReason(node.name, inventoryChange(before, now));
    if (!reason) return;
    this.ctx.log.warn({ node: node.name, gpus: now.length, reason }, 'GPU inventory changed');
    const time = new Date();
    const transition = NodeEvent.create({ eventId: randomUUID(), nodeName: node.name, fromState: node.state, toState: node.state, reason, time });
    try {
      await this.events.appendEvent(node.name, NodeHostEvent.create({ time, event: { $case: 'transition', transition } }));
    } catch (err) {
      // The event log is for people; recovery below must run regardless.
      this.ctx.log.warn({ node: node.name, err: (err as Error).message }, 'could not record the inventory change');
    }
  }

  /** A GPU a job holds that is gone from the node's inventory (fell off the bus, was pulled) is a node fault. */
  private async recoverJobsOnMissingGpus(node: string, before: GpuDevice[], now: GpuDevice[], allocations: GpuAllocation[]): Promise<void> {
    for (const gpu of inventoryChange(before, now).gone) {
      const holders = allocations.filter((a) => a.gpuIndex === gpu.index);
      if (holders.length === 0) continue;
      const detail = missingGpuDetail(node, gpu);
      const signal = FaultSignal.create({ kind: 'gpu-missing', node, gpu: gpu.index, detail, time: new Date(), failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT });
      await signalHolders(this.ctx, holders, signal, detail);
    }
  }

  /** The jobs with these ids at their current revision (the shared job copy), by id. */
  private async jobsOf(ids: readonly string[]): Promise<Map<string, { job: Job; rev: number }>> {
    return new Map((await this.ctx.jobCache.getMany(ids)).map((r) => [r.job.id, r] as const));
  }

  /** Stops ranks nobody wants, re-sends assignments not yet started, frees GPUs nothing holds. */
  async reconcile(rec: NodeRecord, running: AgentRank[]): Promise<void> {
    this.quiet.delete(rec.node.name);
    const jobs = await this.jobsOf([...running.map((r) => r.jobId), ...rec.allocations.map((a) => a.jobId)]);
    await this.reconcileWith({ name: rec.node.name, rev: rec.rev, allocations: rec.allocations }, running, jobs);
  }

  /**
   * reconcile() with the jobs already read (`jobs` may hold other nodes' jobs too). One that
   * finds nothing to do marks the node quiet with its inputs (reconcileInputs): the reconcile
   * loop skips the node's next heartbeats while they are the same, up to RECONCILE_EVERY in a row.
   */
  private async reconcileWith(rec: ReconciledNode, running: AgentRank[], jobs: ReadonlyMap<string, { job: Job; rev: number }>, fingerprint = reconcileInputs(rec, running)): Promise<void> {
    const { ctx } = this;
    const node = rec.name;
    this.quiet.delete(node);
    const epoch = ctx.epoch();
    const runningOwners = new Set(running.map((r) => allocationOwner(r.jobId, r.attempt, r.rank)));
    const work: Promise<unknown>[] = [];
    const onNode = new Set<string>();
    for (const r of running) {
      onNode.add(r.jobId);
      const job = jobs.get(r.jobId)?.job;
      if (!job || !wantsRank(job, r.attempt, r.rank)) {
        const grace = job?.spec?.stopGraceSeconds || ctx.settings.stopGraceSeconds;
        work.push(ctx.commander.stop(node, StopRank.create({ jobId: r.jobId, attempt: r.attempt, rank: r.rank, reason: job ? `job is ${JobState[job.state]}` : 'unknown job', graceSeconds: grace })));
      }
    }
    for (const a of rec.allocations) onNode.add(a.jobId);
    for (const id of onNode) {
      const job = jobs.get(id)?.job;
      if (job && isActive(job) && hasUnstartedRankOn(job, node, runningOwners)) work.push(dispatchAssignments(ctx, job, node));
    }
    const stale: GpuRef[] = [];
    for (const a of rec.allocations) {
      const owner = allocationOwner(a.jobId, a.attempt, a.rank);
      const job = jobs.get(a.jobId)?.job;
      if (!runningOwners.has(owner) && (!job || !wantsRank(job, a.attempt, a.rank))) stale.push({ node, gpu: a.gpuIndex, owner });
    }
    if (work.length === 0 && stale.length === 0) this.quiet.set(node, { fingerprint, skipped: 0 });
    if (stale.length > 0 && epoch !== 0) {
      const freed = await ctx.nodes.releaseGpus(stale, epoch);
      if (freed > 0) {
        ctx.log.info({ node, freed }, 'released GPUs no rank holds');
        ctx.kick();
      }
    }
    await Promise.all(work);
  }

  /** Nodes silent for longer than the timeout become LOST and their jobs fail. */
  private async detectLost(): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    const now = Date.now();
    const timeout = ctx.settings.heartbeatTimeoutMs;
    // After a failover heartbeats were not recorded while nobody led: give agents a full timeout.
    if (epoch === 0 || now - this.electedAt < timeout) return;
    // The intake thread records a heartbeat within a batch window of its arrival, whatever
    // this thread is doing: a time in Redis older than the timeout is silence.
    const silent = (await ctx.nodes.getMany(await ctx.nodes.silentSince(now - timeout))).filter((rec) => now - rec.heartbeatMs >= timeout);
    this.overdue.set(silent.length);
    for (const rec of silent) {
      const silentSec = Math.round((now - rec.heartbeatMs) / 1000);
      const reason = `node ${rec.node.name} lost: no heartbeat for ${silentSec}s`;
      if (WATCHED.has(rec.node.state)) {
        await ctx.nodes.commit({ prev: rec, next: { ...rec.node, state: NodeState.NODE_STATE_LOST, stateBeforeLost: rec.node.state }, reason, epoch });
        ctx.log.warn({ node: rec.node.name, silentSec }, 'node lost');
        this.lost.inc();
      } else if (rec.node.state !== NodeState.NODE_STATE_LOST) {
        continue;
      }
      // Level-triggered: every pass, not only at the transition, so a leader that died between
      // marking the node and failing its jobs leaves nothing behind.
      const jobIds = [...new Set(rec.allocations.map((a) => a.jobId))];
      const lostAt = new Date(rec.heartbeatMs + timeout);
      for (const id of jobIds) await this.recoverJobOnLostNode(id, rec.node.name, reason, lostAt);
    }
  }

  /**
   * A job with ranks on a lost node: a node fault, handed to recovery (the ranks elsewhere are
   * stopped). A preempted job waits for its ranks to end before it is requeued; those on a lost
   * node never will report, so they are recorded as lost. One read-modify-write either way:
   * this runs every pass for as long as the node stays lost.
   */
  private async recoverJobOnLostNode(jobId: string, node: string, reason: string, lostAt: Date): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    const signal = FaultSignal.create({ kind: 'node-lost', node, detail: reason, time: lostAt, failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT });
    let recovering: Job | undefined;
    await mutateJob(ctx.jobs, jobId, (r) => {
      recovering = withFaultSignal(r.job, undefined, signal);
      if (recovering) return { next: recovering, reason: recoveringReason(reason), epoch };
      const onNode = liveRanks(r.job).filter((p) => p.node === node).map((p) => p.rank);
      if (onNode.length === 0 || r.job.state !== JobState.JOB_STATE_PREEMPTED) return undefined;
      return { next: markRanksLost(r.job, onNode, new Date()), reason, epoch };
    });
    if (recovering) afterFaultSignal(ctx, recovering, signal);
  }
}
