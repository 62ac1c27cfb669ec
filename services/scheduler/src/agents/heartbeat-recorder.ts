// Heartbeats in, their times recorded in Redis, and what the node registry needs to reconcile
// each node handed on. This is the part of heartbeat handling whose latency is the liveness
// target (issue 14: every heartbeat recorded within one interval at 10,000 agents), so the
// scheduler runs it on its agent intake thread (intake-worker.ts): on the main thread it waited
// behind scheduling passes, the health window and garbage collection of the main heap
// (event loop held up to 1.4 s at 10,000 agents on a quiet machine, heartbeats p99 several
// seconds from arrival to recorded). Reconciles stay on the main thread, with the job copy.
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { NodeHeartbeat, NodeState, type AgentRank, type GpuAllocation } from '@gantry/proto';
import { decode, subjects } from '@gantry/bus';
import type { NodeRecord, NodeStore, ParsedNode } from '@gantry/store';
import type { Logger } from '@gantry/service-kit';
import type { AgentMessageGuard } from './message-guard.js';

/**
 * Heartbeats waiting for the batch in progress to finish, at most one per node and agent
 * instance (a newer one replaces an older one still waiting: only the latest running ranks
 * matter). Beyond this many (more nodes than any cluster, or a flood) they are dropped as
 * overload; a heartbeat is resent every interval.
 */
const MAX_WAITING_HEARTBEATS = 50_000;

/** Heartbeats handled in one batch (one pipelined script call per 256 nodes): bounds a batch's latency and memory. */
const HEARTBEAT_BATCH = 2_000;

/**
 * How long heartbeats gather before a batch is handled. Most of a heartbeat's cost was its own
 * Redis round trips (a socket write each, and the promises and parsing around them); 5,000
 * heartbeats a second (10,000 nodes at 2 s) come ~250 to a batch. The time is persisted at most
 * this much later, against a LOST timeout of many seconds.
 */
const HEARTBEAT_WINDOW_MS = 50;

/**
 * The node's side of what a reconcile decides from: its record's revision and allocations and
 * the ranks its agent runs (what the heartbeat read anyway). Its jobs' side is not in it: a job
 * that changes on its own (cancelled, failed elsewhere) has its ranks stopped by the transition
 * itself (stopLiveRanks), and the reconcile forced every RECONCILE_EVERY heartbeats catches a
 * command that was lost; so a quiet node's heartbeat reads none of its jobs.
 */
export function reconcileInputs(rec: Pick<NodeRecord, 'rev' | 'allocations'>, running: readonly AgentRank[]): string {
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

/**
 * A heartbeat whose time was recorded: what the registry needs to reconcile its node (the
 * ranks stay encoded: a quiet node's are never decoded again) and to act on what it says.
 * Plain data, so that it crosses from the intake thread to the main thread cheaply.
 */
export interface RecordedHeartbeat {
  node: string;
  /** The node record's revision and GPU allocations as read with the heartbeat: what a reconcile decides from on the node's side. */
  rev: number;
  allocations: GpuAllocation[];
  /** reconcileInputs of the record read with the heartbeat and the ranks it reports. */
  fingerprint: string;
  /** The node's state as read: LOST means its agent is heard from again. */
  state: NodeState;
  /** The highest fencing epoch the agent has accepted. */
  highestEpoch: number;
  /** The heartbeat as the agent sent it (NodeHeartbeat). */
  encoded: Uint8Array;
}

/** Where the recorder's results go: the registry (in process, or on the main thread from the intake thread). */
export interface HeartbeatSink {
  /** Heartbeats recorded, and per heartbeat the seconds from its arrival to its time recorded. */
  recorded(beats: RecordedHeartbeat[], lagsSec: number[]): void;
}

/** What starts and stops heartbeat handling with leadership: a HeartbeatRecorder, or the intake thread running one. */
export interface HeartbeatFeed {
  /**
   * Leads at `epoch` (> 0): heartbeats are taken and recorded. 0: not leading; they are not.
   * Resolves once the NATS server has the subscription (or it is gone).
   */
  lead(epoch: number): Promise<void>;
  close(): Promise<void>;
}

export interface HeartbeatRecorderDeps {
  nc: NatsConnection;
  nodes: NodeStore;
  log: Logger;
  /** Counts and logs what is dropped (on the intake thread: forwards it to the main thread's). */
  guard: AgentMessageGuard;
}

export class HeartbeatRecorder implements HeartbeatFeed {
  private sub: Subscription | undefined;
  private epoch = 0;
  /** Heartbeats received and not yet in a batch (with when they arrived and their bytes), by node and instance; and whether a batch runs. */
  private readonly waiting = new Map<string, { hb: NodeHeartbeat; encoded: Uint8Array; at: number }>();
  private draining = false;
  /** Parsed node records by revision (NodeStore.recordHeartbeats): a record is parsed again only after it changed. */
  private readonly parsed = new Map<string, ParsedNode>();

  constructor(private readonly deps: HeartbeatRecorderDeps, private readonly sink: HeartbeatSink) {}

  async lead(epoch: number): Promise<void> {
    this.epoch = epoch;
    if (epoch > 0 && !this.sub) {
      // Queue group: with several replicas subscribed, each heartbeat is handled once.
      this.sub = this.deps.nc.subscribe(subjects.agentHeartbeatAll, {
        queue: 'scheduler',
        callback: (err, msg) => {
          if (!err) this.receive(msg.data, msg.subject);
        },
      });
      await this.deps.nc.flush();
    } else if (epoch === 0 && this.sub) {
      this.sub.unsubscribe();
      this.sub = undefined;
      this.waiting.clear();
      // A later leadership re-reads every record (another replica may have led in between).
      this.parsed.clear();
    }
  }

  async close(): Promise<void> {
    await this.lead(0);
  }

  /**
   * A heartbeat on `subject` (agentHeartbeat of the sending node): checked and queued for the
   * next batch. Heartbeats arriving while a batch is handled are handled together in the next:
   * one pipelined script call per 256 nodes reads their records and writes their times. A batch
   * starts HEARTBEAT_WINDOW_MS after the first heartbeat that finds none waiting, and another
   * one that long after a batch that left heartbeats waiting.
   */
  receive(data: Uint8Array, subject: string): void {
    if (this.waiting.size >= MAX_WAITING_HEARTBEATS) {
      this.deps.guard.drop('heartbeat', 'overload', { subject });
      return;
    }
    let hb: NodeHeartbeat;
    try {
      hb = decode(NodeHeartbeat, data, 'NodeHeartbeat');
    } catch (e) {
      this.deps.log.warn({ err: (e as Error).message.slice(0, 300) }, 'heartbeat not processed');
      return;
    }
    if (!this.deps.guard.sameNode('heartbeat', subject, hb.node)) return;
    waitForBatch(this.waiting, `${hb.node}\n${hb.instanceId}`, { hb, encoded: data, at: Date.now() });
    if (!this.draining) {
      this.draining = true;
      setTimeout(() => void this.drain(), HEARTBEAT_WINDOW_MS);
    }
  }

  private async drain(): Promise<void> {
    const batch: { hb: NodeHeartbeat; encoded: Uint8Array; at: number }[] = [];
    for (const [key, w] of this.waiting) {
      this.waiting.delete(key);
      batch.push(w);
      if (batch.length >= HEARTBEAT_BATCH) break;
    }
    await this.record(batch).catch((e: unknown) => this.deps.log.warn({ err: (e as Error).message.slice(0, 300), heartbeats: batch.length }, 'heartbeats not processed'));
    // Behind (a batch's worth waiting): on at once. Else the next batch gathers for a window.
    if (this.waiting.size >= HEARTBEAT_BATCH / 4) setImmediate(() => void this.drain());
    else if (this.waiting.size > 0) setTimeout(() => void this.drain(), HEARTBEAT_WINDOW_MS);
    else this.draining = false;
  }

  /**
   * Records a batch's times (Redis: what LOST detection by any replica reads) and hands the
   * accepted heartbeats to the sink. Read and recorded in one round trip: the script records a
   * heartbeat's time when its node is registered to the heartbeat's instance, which is what the
   * instance check below decides from the record it returns.
   */
  async record(batch: readonly { hb: NodeHeartbeat; encoded: Uint8Array; at: number }[]): Promise<void> {
    if (this.epoch === 0 || batch.length === 0) return;
    const now = Date.now();
    const recs = await this.deps.nodes.recordHeartbeats(batch.map(({ hb }) => ({ name: hb.node, instanceId: hb.instanceId })), now, this.parsed);
    const out: RecordedHeartbeat[] = [];
    const lags: number[] = [];
    for (const [i, { hb, encoded, at }] of batch.entries()) {
      const rec = recs[i];
      if (!rec) continue; // unknown node: it registers first
      // Only the instance that registered last speaks for the node (a stale process, or anything
      // replaying an old heartbeat, must not keep it READY).
      if (!this.deps.guard.sameInstance(hb.node, rec.instanceId, hb.instanceId)) continue;
      // Copied: the NATS client's message is a view of its whole read buffer (16 KiB or more for
      // a 300-byte heartbeat), which posting to the main thread would copy entire, and keeping
      // the view until the reconcile would keep alive.
      out.push({ node: hb.node, rev: rec.rev, allocations: rec.allocations, fingerprint: reconcileInputs(rec, hb.ranks), state: rec.node.state, highestEpoch: hb.highestEpoch, encoded: encoded.slice() });
      lags.push(Math.max(0, now - at) / 1000);
    }
    if (out.length > 0) this.sink.recorded(out, lags);
  }
}
