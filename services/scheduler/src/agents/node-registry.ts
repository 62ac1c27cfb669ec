// Node membership: registration, heartbeats, LOST detection, and reconciliation of what an
// agent runs with what the scheduler wants (level-triggered: every heartbeat re-checks).
import { randomUUID } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import { Counter, Gauge } from 'prom-client';
import {
  AgentRank, FailureClass, FaultSignal, JobState, Node, NodeEvent, NodeHeartbeat, NodeHostEvent, NodeState, RegisterNodeRequest, RegisterNodeResponse, StopRank, type GpuAllocation, type GpuDevice, type Job,
} from '@gantry/proto';
import { decode, encode, subjects, SUBJECT_TOKEN } from '@gantry/bus';
import { allocationOwner, NodeTelemetryStore, type GpuRef, type NodeRecord } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { isActive, liveRanks, markRanksLost, wantsRank } from '../jobs/lifecycle.js';
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
 * Registrations and heartbeats handled at once. Each is a few Redis round trips; a flood (a
 * broken or hostile agent) beyond this is dropped, not queued without bound in memory. Agents
 * retry registration, and a heartbeat is resent every interval.
 */
const MAX_IN_FLIGHT = 256;

/** States in which a silent node is declared LOST. */
const WATCHED = new Set([NodeState.NODE_STATE_READY, NodeState.NODE_STATE_SUSPECT, NodeState.NODE_STATE_DRAINING, NodeState.NODE_STATE_DRAINED, NodeState.NODE_STATE_QUARANTINED, NodeState.NODE_STATE_REGISTERING]);

export class NodeRegistry {
  private subs: Subscription[] = [];
  private lostTimer: NodeJS.Timeout | undefined;
  private electedAt = 0;
  private inFlight = 0;

  private readonly events: NodeTelemetryStore;
  private readonly lost: Counter;
  private readonly overdue: Gauge;
  private readonly guard: AgentMessageGuard;

  constructor(private readonly ctx: SchedulerContext) {
    this.guard = AgentMessageGuard.of(ctx.metrics, ctx.log);
    this.events = new NodeTelemetryStore(ctx.redis);
    this.lost = new Counter({ name: 'gantry_nodes_lost_total', help: 'Nodes declared LOST: no heartbeat for HEARTBEAT_TIMEOUT_MS', registers: [ctx.metrics] });
    this.overdue = new Gauge({ name: 'gantry_nodes_heartbeat_overdue', help: 'Nodes without a heartbeat for longer than HEARTBEAT_TIMEOUT_MS (LOST ones included), at the leader\'s latest check', registers: [ctx.metrics] });
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
        if (this.inFlight >= MAX_IN_FLIGHT) {
          this.guard.drop('heartbeat', 'overload', { subject: msg.subject });
          return;
        }
        this.inFlight++;
        void this.heartbeat(msg.data, msg.subject)
          .catch((e: unknown) => ctx.log.warn({ err: (e as Error).message.slice(0, 300) }, 'heartbeat not processed'))
          .finally(() => this.inFlight--);
      },
    }));
    this.lostTimer = setInterval(() => void this.detectLost().catch((e: unknown) => ctx.log.warn({ err: (e as Error).message }, 'lost-node check failed')), 500);
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    clearInterval(this.lostTimer);
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

  /** A heartbeat on `subject` (agentHeartbeat of the sending node). */
  async heartbeat(data: Uint8Array, subject: string): Promise<void> {
    const { ctx } = this;
    const hb = decode(NodeHeartbeat, data, 'NodeHeartbeat');
    const epoch = ctx.epoch();
    if (epoch === 0) return;
    if (!this.guard.sameNode('heartbeat', subject, hb.node)) return;
    let rec = await ctx.nodes.get(hb.node);
    if (!rec) return; // unknown node: it registers first
    // Only the instance that registered last speaks for the node (a stale process, or anything
    // replaying an old heartbeat, must not keep it READY).
    if (!this.guard.sameInstance(hb.node, rec.instanceId, hb.instanceId)) return;
    if (hb.highestEpoch > epoch) ctx.agentEpoch(hb.highestEpoch);
    const now = Date.now();
    await ctx.nodes.heartbeat(hb.node, now);
    if (rec.node.state === NodeState.NODE_STATE_LOST) {
      rec = await ctx.nodes.commit({ prev: rec, next: { ...rec.node, state: returningState(rec.node), stateBeforeLost: NodeState.NODE_STATE_UNSPECIFIED }, reason: 'heartbeats resumed', epoch, heartbeatMs: now });
      ctx.kick();
    }
    await this.reconcile(rec, hb.ranks);
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

  /** Stops ranks nobody wants, re-sends assignments not yet started, frees GPUs nothing holds. */
  async reconcile(rec: NodeRecord, running: AgentRank[]): Promise<void> {
    const { ctx } = this;
    const epoch = ctx.epoch();
    const node = rec.node.name;
    const runningOwners = new Set(running.map((r) => allocationOwner(r.jobId, r.attempt, r.rank)));
    const jobIds = new Set([...running.map((r) => r.jobId), ...rec.allocations.map((a) => a.jobId)]);
    const jobs = new Map((await ctx.jobCache.getMany([...jobIds])).map((r) => [r.job.id, r.job] as const));
    const work: Promise<unknown>[] = [];
    for (const r of running) {
      const job = jobs.get(r.jobId);
      if (!job || !wantsRank(job, r.attempt, r.rank)) {
        const grace = job?.spec?.stopGraceSeconds || ctx.settings.stopGraceSeconds;
        work.push(ctx.commander.stop(node, StopRank.create({ jobId: r.jobId, attempt: r.attempt, rank: r.rank, reason: job ? `job is ${JobState[job.state]}` : 'unknown job', graceSeconds: grace })));
      }
    }
    for (const job of jobs.values()) {
      if (isActive(job)) work.push(dispatchAssignments(ctx, job, node));
    }
    const stale: GpuRef[] = [];
    for (const a of rec.allocations) {
      const owner = allocationOwner(a.jobId, a.attempt, a.rank);
      const job = jobs.get(a.jobId);
      if (!runningOwners.has(owner) && (!job || !wantsRank(job, a.attempt, a.rank))) stale.push({ node, gpu: a.gpuIndex, owner });
    }
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
