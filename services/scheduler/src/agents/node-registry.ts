// Node membership: registration, heartbeats, LOST detection, and reconciliation of what an
// agent runs with what the scheduler wants (level-triggered: every heartbeat re-checks).
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

/**
 * Heartbeats waiting for the batch in progress to finish, at most one per node and agent
 * instance (a newer one replaces an older one still waiting: only the latest running ranks
 * matter). Beyond this many (more nodes than any cluster, or a flood) they are dropped as
 * overload; a heartbeat is resent every interval.
 */
const MAX_WAITING_HEARTBEATS = 50_000;

/** Heartbeats handled in one batch (one pipelined read, one write): bounds a batch's latency and memory. */
const HEARTBEAT_BATCH = 2_000;

/**
 * How long heartbeats gather before a batch is handled. Most of a heartbeat's cost was its own
 * Redis round trips (a socket write each, and the promises and parsing around them); 5,000
 * heartbeats a second (10,000 nodes at 2 s) come ~250 to a batch. The time is persisted at most
 * this much later, against a LOST timeout of many seconds.
 */
const HEARTBEAT_WINDOW_MS = 50;

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

/**
 * The node's side of what a reconcile decides from: its record's revision and allocations and
 * the ranks its agent runs (what the heartbeat read anyway). Its jobs' side is not in it: a job
 * that changes on its own (cancelled, failed elsewhere) has its ranks stopped by the transition
 * itself (stopLiveRanks), and the reconcile forced every RECONCILE_EVERY heartbeats catches a
 * command that was lost; so a quiet node's heartbeat reads none of its jobs.
 */
function reconcileInputs(rec: NodeRecord, running: readonly AgentRank[]): string {
  const parts = [String(rec.rev)];
  for (const a of rec.allocations) parts.push(`a${a.gpuIndex}=${a.jobId}/${a.attempt}/${a.rank}`);
  for (const r of running) parts.push(`r${r.jobId}/${r.attempt}/${r.rank}`);
  return parts.join(' ');
}

/**
 * Queues a heartbeat for the next batch. A newer heartbeat of a node still waiting replaces the
 * older one in its place: batches take the longest-waiting nodes first. Moving it to the back
 * instead starved nodes once more were waiting than a batch takes: each new heartbeat (every
 * interval) sent its node to the back again, and in a 5,000-node placement burst nodes whose
 * agents heartbeat on time were declared LOST.
 */
export function waitForBatch<T>(waiting: Map<string, T>, key: string, hb: T): void {
  waiting.set(key, hb);
}

/** States in which a silent node is declared LOST. */
const WATCHED = new Set([NodeState.NODE_STATE_READY, NodeState.NODE_STATE_SUSPECT, NodeState.NODE_STATE_DRAINING, NodeState.NODE_STATE_DRAINED, NodeState.NODE_STATE_QUARANTINED, NodeState.NODE_STATE_REGISTERING]);

export class NodeRegistry {
  private subs: Subscription[] = [];
  private lostTimer: NodeJS.Timeout | undefined;
  private electedAt = 0;
  private inFlight = 0;
  /** Heartbeats received and not yet in a batch (with when they arrived), by node and instance; and whether a batch runs. */
  private waiting = new Map<string, { hb: NodeHeartbeat; at: number }>();
  private draining = false;
  /** Parsed node records by revision (NodeStore.getMany): a heartbeat re-parses a record only after it changed. */
  private readonly parsed = new Map<string, { rev: number; node: Node }>();
  /** Heartbeats recorded whose reconcile has not run yet, by node (latest only); and whether the reconcile loop runs. */
  private readonly toReconcile = new Map<string, { hb: NodeHeartbeat; rec: NodeRecord }>();
  private reconciling = false;
  /** Per node: the inputs of its last reconcile that found nothing to do, and heartbeats skipped since. */
  private readonly quiet = new Map<string, { fingerprint: string; skipped: number }>();

  private readonly events: NodeTelemetryStore;
  private readonly lost: Counter;
  private readonly overdue: Gauge;
  private readonly recordLag: Histogram;
  private readonly guard: AgentMessageGuard;

  constructor(private readonly ctx: SchedulerContext) {
    this.guard = AgentMessageGuard.of(ctx.metrics, ctx.log);
    this.events = new NodeTelemetryStore(ctx.redis);
    this.lost = new Counter({ name: 'gantry_nodes_lost_total', help: 'Nodes declared LOST: no heartbeat for HEARTBEAT_TIMEOUT_MS', registers: [ctx.metrics] });
    this.overdue = new Gauge({ name: 'gantry_nodes_heartbeat_overdue', help: 'Nodes without a heartbeat for longer than HEARTBEAT_TIMEOUT_MS (LOST ones included), at the leader\'s latest check', registers: [ctx.metrics] });
    // Apart from the agent's send time: what the scheduler itself adds once a heartbeat reached
    // its event loop (the batch window, the record read, waiting behind other work), as against
    // delivery (NATS, a busy event loop not reading its socket).
    this.recordLag = new Histogram({ name: 'gantry_heartbeat_record_lag_seconds', help: 'From a heartbeat\'s arrival at the scheduler to its time recorded in Redis', registers: [ctx.metrics], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5] });
  }

  start(): void {
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
    this.subs.push(ctx.nc.subscribe(subjects.agentHeartbeatAll, {
      queue: 'scheduler',
      callback: (err, msg) => {
        if (err) return;
        this.receiveHeartbeat(msg.data, msg.subject);
      },
    }));
    this.lostTimer = setInterval(() => void this.detectLost().catch((e: unknown) => ctx.log.warn({ err: (e as Error).message }, 'lost-node check failed')), 500);
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    clearInterval(this.lostTimer);
    this.waiting.clear();
    // A later leadership re-reads everything (another replica may have led in between).
    this.parsed.clear();
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
    // Nothing a heartbeat kept of this node outlives its registration (a record written anew,
    // e.g. after Redis lost it, starts again at revision 1).
    this.parsed.delete(req.node);
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

  /**
   * A heartbeat on `subject` (agentHeartbeat of the sending node): checked and queued for the
   * next batch. Heartbeats arriving while a batch is handled are handled together in the next:
   * one pipelined read of their node records, one write of their times, one read of their jobs'
   * revisions, instead of those round trips (and their parsing) per heartbeat. A batch starts
   * HEARTBEAT_WINDOW_MS after the first heartbeat that finds none waiting, and another one that
   * long after a batch that left heartbeats waiting.
   */
  receiveHeartbeat(data: Uint8Array, subject: string): void {
    if (this.waiting.size >= MAX_WAITING_HEARTBEATS) {
      this.guard.drop('heartbeat', 'overload', { subject });
      return;
    }
    let hb: NodeHeartbeat;
    try {
      hb = decode(NodeHeartbeat, data, 'NodeHeartbeat');
    } catch (e) {
      this.ctx.log.warn({ err: (e as Error).message.slice(0, 300) }, 'heartbeat not processed');
      return;
    }
    if (!this.guard.sameNode('heartbeat', subject, hb.node)) return;
    waitForBatch(this.waiting, `${hb.node}\n${hb.instanceId}`, { hb, at: Date.now() });
    if (!this.draining) {
      this.draining = true;
      setTimeout(() => void this.drain(), HEARTBEAT_WINDOW_MS);
    }
  }

  private async drain(): Promise<void> {
    const batch: NodeHeartbeat[] = [];
    const arrived: number[] = [];
    for (const [key, w] of this.waiting) {
      this.waiting.delete(key);
      batch.push(w.hb);
      arrived.push(w.at);
      if (batch.length >= HEARTBEAT_BATCH) break;
    }
    await this.heartbeats(batch, arrived).catch((e: unknown) => this.ctx.log.warn({ err: (e as Error).message.slice(0, 300), heartbeats: batch.length }, 'heartbeats not processed'));
    // Behind (a batch's worth waiting): on at once. Else the next batch gathers for a window,
    // which leaves the event loop to rank events and passes between batches.
    if (this.waiting.size >= HEARTBEAT_BATCH / 4) setImmediate(() => void this.drain());
    else if (this.waiting.size > 0) setTimeout(() => void this.drain(), HEARTBEAT_WINDOW_MS);
    else this.draining = false;
  }

  /**
   * Heartbeats of several nodes (decoded, their subjects checked). Each heartbeat's time is
   * persisted (Redis: what LOST detection by any replica reads) before this resolves. The
   * reconciles they call for run after, apart (reconcileSoon): reading the nodes' jobs and
   * deciding takes longer than recording the times, and the next batch's times must not wait
   * for it, nor for an agent slow to answer a command.
   */
  async heartbeats(batch: readonly NodeHeartbeat[], arrivedMs?: readonly number[]): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    if (epoch === 0 || batch.length === 0) return;
    // Read and recorded in one round trip: the script records a heartbeat's time when its node
    // is registered to the heartbeat's instance, which is what sameInstance below decides from
    // the record it returns.
    const now = Date.now();
    const recs = await ctx.nodes.recordHeartbeats(batch.map((hb) => ({ name: hb.node, instanceId: hb.instanceId })), now, this.parsed);
    const accepted: { hb: NodeHeartbeat; rec: NodeRecord }[] = [];
    for (const [i, hb] of batch.entries()) {
      const rec = recs[i];
      if (!rec) continue; // unknown node: it registers first
      // Only the instance that registered last speaks for the node (a stale process, or anything
      // replaying an old heartbeat, must not keep it READY).
      if (!this.guard.sameInstance(hb.node, rec.instanceId, hb.instanceId)) continue;
      if (hb.highestEpoch > epoch) ctx.agentEpoch(hb.highestEpoch);
      accepted.push({ hb, rec });
      if (arrivedMs?.[i] !== undefined) this.recordLag.observe(Math.max(0, now - arrivedMs[i]) / 1000);
    }
    if (accepted.length === 0) return;
    const returning = accepted.filter((a) => a.rec.node.state === NodeState.NODE_STATE_LOST);
    if (returning.length > 0) {
      await Promise.all(returning.map(async (a) => {
        a.rec = await ctx.nodes.commit({ prev: a.rec, next: { ...a.rec.node, state: returningState(a.rec.node), stateBeforeLost: NodeState.NODE_STATE_UNSPECIFIED }, reason: 'heartbeats resumed', epoch, heartbeatMs: now });
      }));
      ctx.kick();
    }
    this.reconcileSoon(accepted);
  }

  /**
   * Queues reconciles of these nodes for the reconcile loop, one per node at most (a newer
   * heartbeat's replaces one still waiting: only the latest ranks and record matter), so a
   * loop that falls behind coalesces them instead of piling them up.
   */
  private reconcileSoon(accepted: readonly { hb: NodeHeartbeat; rec: NodeRecord }[]): void {
    for (const a of accepted) this.toReconcile.set(a.hb.node, a);
    if (this.reconciling) return;
    this.reconciling = true;
    void this.reconcileLoop();
  }

  private async reconcileLoop(): Promise<void> {
    try {
      while (this.toReconcile.size > 0) {
        const batch: { hb: NodeHeartbeat; rec: NodeRecord; fingerprint: string }[] = [];
        for (const [node, a] of this.toReconcile) {
          this.toReconcile.delete(node);
          // Unchanged since a reconcile that found nothing to do: nothing to decide (up to RECONCILE_EVERY times).
          const fingerprint = reconcileInputs(a.rec, a.hb.ranks);
          const quiet = this.quiet.get(node);
          if (quiet && quiet.fingerprint === fingerprint && quiet.skipped < RECONCILE_EVERY) {
            quiet.skipped++;
            continue;
          }
          batch.push({ ...a, fingerprint });
          if (batch.length >= HEARTBEAT_BATCH) break;
        }
        if (batch.length === 0) continue;
        try {
          const jobs = await this.jobsOf(batch.flatMap(({ hb, rec }) => [...hb.ranks.map((r) => r.jobId), ...rec.allocations.map((a) => a.jobId)]));
          for (const { hb, rec, fingerprint } of batch) {
            void this.reconcileWith(rec, hb.ranks, jobs, fingerprint).catch((e: unknown) => this.ctx.log.warn({ node: rec.node.name, err: (e as Error).message.slice(0, 300) }, 'reconcile failed'));
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
    await this.reconcileWith(rec, running, jobs);
  }

  /**
   * reconcile() with the jobs already read (`jobs` may hold other nodes' jobs too). One that
   * finds nothing to do marks the node quiet with its inputs (reconcileInputs): the reconcile
   * loop skips the node's next heartbeats while they are the same, up to RECONCILE_EVERY in a row.
   */
  private async reconcileWith(rec: NodeRecord, running: AgentRank[], jobs: ReadonlyMap<string, { job: Job; rev: number }>, fingerprint = reconcileInputs(rec, running)): Promise<void> {
    const { ctx } = this;
    const node = rec.node.name;
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
    // A heartbeat of the registered agent received and waiting for its batch is not silence.
    const silent = (await ctx.nodes.getMany(await ctx.nodes.silentSince(now - timeout))).filter((rec) => now - rec.heartbeatMs >= timeout && !this.waiting.has(`${rec.node.name}\n${rec.instanceId}`));
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
