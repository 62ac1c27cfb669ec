// Creates or updates the JetStream streams Gantry needs. Idempotent: every service calls it
// at start, so the first one up creates them and a config change rolls out by restart.
import type { NatsConnection } from '@nats-io/transport-node';
import { nanos } from '@nats-io/transport-node';
import { jetstreamManager, JetStreamApiError, RetentionPolicy, StorageType, DiscardPolicy, type StreamConfig } from '@nats-io/jetstream';
import { streams, type StreamSpec } from './subjects.js';

export interface EnsureStreamsOptions {
  /**
   * Replicas of every stream (its consumers inherit it): 1 on a single server, 3 on a
   * three-node cluster. Unset: new streams get 1 and existing ones keep theirs.
   */
  replicas?: number;
  specs?: StreamSpec[];
  log?: { warn(obj: object, msg: string): void };
}

/** The JetStream configuration of a spec. */
export function streamConfig(spec: StreamSpec, replicas: number): Partial<StreamConfig> & { name: string } {
  return {
    name: spec.name,
    subjects: spec.subjects,
    retention: spec.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: spec.discard === 'new' ? DiscardPolicy.New : DiscardPolicy.Old,
    max_age: nanos(spec.maxAgeSec * 1000),
    max_bytes: spec.maxBytes,
    max_msgs: spec.maxMsgs ?? -1,
    duplicate_window: nanos(spec.duplicateWindowSec * 1000),
    num_replicas: replicas,
  };
}

export async function ensureStreams(nc: NatsConnection, opts: EnsureStreamsOptions = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const spec of opts.specs ?? Object.values(streams)) {
    const config = streamConfig(spec, opts.replicas ?? 1);
    try {
      await jsm.streams.add(config);
    } catch (err) {
      // It exists (another service created it, or an earlier start): bring its limits up to date.
      if (!(err instanceof JetStreamApiError) || !/already in use/i.test(err.message)) throw err;
      const existing = (await jsm.streams.info(spec.name)).config;
      const update = { ...config, ...(opts.replicas === undefined ? { num_replicas: existing.num_replicas } : {}) };
      if (existing.retention !== config.retention) {
        // JetStream cannot change a stream's retention in place. Keep the old one (and its age
        // limit, which is what bounds a limits stream) and say how to switch.
        opts.log?.warn({ stream: spec.name, retention: existing.retention, wanted: config.retention }, 'stream keeps its retention policy; recreate it (docs/deploy.md) to switch');
        Object.assign(update, { retention: existing.retention, max_age: existing.max_age, discard: existing.discard });
      }
      await jsm.streams.update(spec.name, update);
    }
  }
}

export interface StreamFill {
  stream: string;
  messages: number;
  bytes: number;
  maxBytes: number;
  maxMessages: number;
  /** The larger of bytes/maxBytes and messages/maxMessages, 0..1 (0 when unlimited). */
  fillRatio: number;
  discard: 'old' | 'new';
  retention: 'limits' | 'workqueue' | 'interest';
  /** 0 = no age limit. */
  maxAgeSec: number;
  replicas: number;
  /** Cluster view of the stream: its leader and each replica's state. */
  leader?: string;
  peers: { name: string; current: boolean; lagMessages: number }[];
}

/** How full each Gantry stream is, and where its replicas stand (for metrics and status). */
export async function streamFill(nc: NatsConnection, specs: StreamSpec[] = Object.values(streams)): Promise<StreamFill[]> {
  const jsm = await jetstreamManager(nc);
  const out: StreamFill[] = [];
  for (const spec of specs) {
    const info = await jsm.streams.info(spec.name);
    const { config: c, state: s } = info;
    const byBytes = c.max_bytes > 0 ? s.bytes / c.max_bytes : 0;
    const byMsgs = c.max_msgs > 0 ? s.messages / c.max_msgs : 0;
    out.push({
      stream: spec.name, messages: s.messages, bytes: s.bytes, maxBytes: c.max_bytes, maxMessages: c.max_msgs,
      fillRatio: Math.max(byBytes, byMsgs), discard: c.discard === DiscardPolicy.New ? 'new' : 'old',
      retention: c.retention, maxAgeSec: Math.round(c.max_age / 1e9), replicas: c.num_replicas,
      leader: info.cluster?.leader,
      peers: (info.cluster?.replicas ?? []).map((r) => ({ name: r.name, current: r.current, lagMessages: r.lag ?? 0 })),
    });
  }
  return out;
}
