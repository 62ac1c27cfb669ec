// The status page's event feed: the newest job and node state changes, read from the
// GANTRY_EVENTS stream (the durable history WatchJob serves from) by one ordered consumer per
// gateway, kept in a small ring. Each page request sees the ring filtered for its caller.
import type { NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { JobEvent, NodeEvent, jobStateName, nodeStateName } from '@gantry/proto';
import { decode, streams, subjects } from '@gantry/bus';
import type { Logger } from '@gantry/service-kit';

/** Events kept (and replayed from the stream at start). */
export const FEED_SIZE = 200;

export interface FeedEvent {
  seq: number;
  time: string;
  kind: 'job' | 'node';
  /** The job id or node name. */
  subject: string;
  /** The job's tenant (job events only): the feed shows a caller its tenants' jobs only. */
  tenant: string;
  jobName: string;
  from: string;
  to: string;
  attempt: number;
  reason: string;
}

const JOB_PREFIX = subjects.jobEventAll.slice(0, -1);

export function feedEvent(subject: string, data: Uint8Array, seq: number): FeedEvent | undefined {
  if (subject.startsWith(JOB_PREFIX)) {
    const e = decode(JobEvent, data, 'JobEvent');
    return { seq, time: e.time?.toISOString() ?? '', kind: 'job', subject: e.jobId, tenant: e.job?.spec?.tenant ?? '', jobName: e.job?.spec?.name ?? '', from: jobStateName(e.fromState), to: jobStateName(e.toState), attempt: e.attempt, reason: e.reason };
  }
  const e = decode(NodeEvent, data, 'NodeEvent');
  return { seq, time: e.time?.toISOString() ?? '', kind: 'node', subject: e.nodeName, tenant: '', jobName: '', from: nodeStateName(e.fromState), to: nodeStateName(e.toState), attempt: 0, reason: e.reason };
}

export class EventFeed {
  private readonly ring: FeedEvent[] = [];
  private stopped = false;
  private stopConsumer: (() => void) | undefined;

  constructor(private readonly nc: NatsConnection, private readonly log: Logger) {}

  /** Starts following the stream from its last FEED_SIZE messages; returns once the consumer exists. */
  async start(): Promise<void> {
    const info = await (await jetstreamManager(this.nc)).streams.info(streams.events.name);
    const from = Math.max(1, info.state.last_seq - FEED_SIZE + 1);
    const consumer = await jetstream(this.nc).consumers.get(streams.events.name, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
    const messages = await consumer.consume();
    this.stopConsumer = () => void messages.stop();
    void (async () => {
      for await (const m of messages) {
        try {
          const e = feedEvent(m.subject, m.data, m.seq);
          if (e) this.push(e);
        } catch (err) {
          this.log.warn({ err: (err as Error).message, subject: m.subject }, 'status page: an event that does not decode was skipped');
        }
      }
    })().catch((err: unknown) => { if (!this.stopped) this.log.warn({ err: (err as Error).message }, 'status page: the event feed stopped'); });
  }

  private push(e: FeedEvent): void {
    this.ring.push(e);
    if (this.ring.length > FEED_SIZE) this.ring.splice(0, this.ring.length - FEED_SIZE);
  }

  /** The events `visible` lets through, newest first. */
  recent(visible: (e: FeedEvent) => boolean, limit = 100): FeedEvent[] {
    const out: FeedEvent[] = [];
    for (let i = this.ring.length - 1; i >= 0 && out.length < limit; i--) if (visible(this.ring[i]!)) out.push(this.ring[i]!);
    return out;
  }

  stop(): void {
    this.stopped = true;
    this.stopConsumer?.();
  }
}
