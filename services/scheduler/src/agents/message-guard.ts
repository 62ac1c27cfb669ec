// What the scheduler believes of an agent's message. NATS permissions let an agent publish
// only on subjects ending in its own node (libs/bus/src/nats-auth.ts), so the subject's node
// token is the sender; the node named in the payload must be the same, a heartbeat must come
// from the agent instance that registered last (a rank event, XID or telemetry batch from it,
// or from the instance before it if stamped before the current one started), and a rank event
// must be for a rank the job placed on that node. Anything else is dropped, counted and logged: it is forged, or from a
// stale or broken agent, and acting on it could fail jobs or fill Redis.
import { Counter, type Registry } from 'prom-client';
import type { Job } from '@gantry/proto';
import type { NodeInstances } from '@gantry/store';
import { subjectNode } from '@gantry/bus';
import { throttledWarn, type Logger } from '@gantry/service-kit';

export type AgentMessageKind = 'register' | 'heartbeat' | 'rank-event' | 'host-event' | 'telemetry' | 'logs';
export type DropReason =
  /** The payload names another node than the subject it came on. */
  | 'node-mismatch'
  /** From an agent instance that is neither the registered one nor the one before it (or an unregistered node). */
  | 'instance-mismatch'
  /** From the instance before the registered one, stamped after the registered one started (a stale process). */
  | 'stale-instance'
  /** A rank event for a rank the job's attempt did not place on that node (or no such job, attempt or rank). */
  | 'rank-not-placed'
  /** More registrations or heartbeats in flight than the scheduler takes at once (a flood). */
  | 'overload'
  /** Larger than any real message of its kind (it would be stored in Redis). */
  | 'oversize';

const guards = new WeakMap<Registry, AgentMessageGuard>();

/** What is done with a dropped message: counted and logged (AgentMessageGuard.of), or passed to the thread that does that (AgentMessageGuard.forwarding). */
export type DropRecorder = (kind: AgentMessageKind, reason: DropReason, detail: Record<string, unknown>) => void;

export class AgentMessageGuard {
  private constructor(private readonly record: DropRecorder, private readonly dropped?: Counter<'kind' | 'reason'>) {}

  /** One guard (one counter) per metrics registry, shared by the registry, rank and telemetry consumers. */
  static of(metrics: Registry, log: Logger): AgentMessageGuard {
    let g = guards.get(metrics);
    if (!g) {
      // Per kind and reason, at most a line a second.
      const warnDropped = throttledWarn(log, 'dropped an agent message');
      const dropped = new Counter({
        name: 'gantry_agent_messages_dropped_total',
        help: 'Agent messages the scheduler dropped as untrustworthy: payload node not the subject\'s, from another agent instance than the registered one (or a replaced one), rank event for a rank not placed on that node',
        labelNames: ['kind', 'reason'], registers: [metrics],
      });
      g = new AgentMessageGuard((kind, reason, detail) => {
        dropped.inc({ kind, reason });
        warnDropped(`${kind}/${reason}`, { kind, reason, ...detail });
      }, dropped);
      guards.set(metrics, g);
    }
    return g;
  }

  /** A guard whose drops go to `record` (the agent intake thread's: the main thread counts and logs them). */
  static forwarding(record: DropRecorder): AgentMessageGuard {
    return new AgentMessageGuard(record);
  }

  /** Whether the payload's node is the one its subject names; a mismatch is dropped. */
  sameNode(kind: AgentMessageKind, subject: string, payloadNode: string): boolean {
    const sender = subjectNode(subject);
    if (payloadNode === sender) return true;
    this.drop(kind, 'node-mismatch', { sender, claimed: payloadNode.slice(0, 128) });
    return false;
  }

  /** Whether a message is within its kind's size bound; otherwise dropped. */
  withinSize(kind: AgentMessageKind, subject: string, bytes: number, max: number): boolean {
    if (bytes <= max) return true;
    this.drop(kind, 'oversize', { sender: subjectNode(subject), bytes, max });
    return false;
  }

  /** Whether a heartbeat's instance is the registered one (a record without one accepts any). */
  sameInstance(node: string, registered: string, instance: string): boolean {
    if (!registered || registered === instance) return true;
    this.drop('heartbeat', 'instance-mismatch', { node, registered, instance: instance.slice(0, 64) });
    return false;
  }

  /**
   * Whether a rank event, XID event or telemetry batch comes from the node's agent process:
   * the registered instance, or the one it replaced for what that one stamped before the
   * registered one started (reports it buffered on disk while NATS was down and its successor
   * sends after a restart; the two stamps are the same host's clock). Anything else (an
   * unregistered node, an unknown or empty instance, a replaced process still talking) is dropped.
   */
  fromInstance(kind: AgentMessageKind, node: string, instances: NodeInstances | undefined, instance: string, stampedMs: number | undefined): boolean {
    if (instances && instance) {
      if (instance === instances.current) return true;
      if (instance === instances.previous) {
        if (instances.sinceMs > 0 && stampedMs !== undefined && stampedMs < instances.sinceMs) return true;
        this.drop(kind, 'stale-instance', { node, instance: instance.slice(0, 64), registered: instances.current, stamped: stampedMs, registeredSince: instances.sinceMs });
        return false;
      }
    }
    this.drop(kind, 'instance-mismatch', { node, instance: instance.slice(0, 64), registered: instances?.current ?? 'none' });
    return false;
  }

  /** Whether the job's attempt placed this rank on this node; otherwise dropped. */
  placedOn(job: Job, attempt: number, rank: number, node: string): boolean {
    const placed = job.attempts.find((a) => a.number === attempt)?.placement.find((p) => p.rank === rank)?.node;
    if (placed === node) return true;
    this.drop('rank-event', 'rank-not-placed', { node, job: job.id, attempt, rank, placedOn: placed ?? 'nowhere' });
    return false;
  }

  /**
   * Counts every drop; logs at most one line per kind and reason a second (with how many were
   * not logged), so a flood of bad messages cannot flood the log too.
   */
  drop(kind: AgentMessageKind, reason: DropReason, detail: Record<string, unknown>): void {
    this.record(kind, reason, detail);
  }


  /** Dropped so far (tests and fuzzing read it). */
  async count(kind: AgentMessageKind, reason: DropReason): Promise<number> {
    if (!this.dropped) throw new Error('a forwarding guard counts nothing itself');
    return (await this.dropped.get()).values.find((v) => v.labels.kind === kind && v.labels.reason === reason)?.value ?? 0;
  }
}
