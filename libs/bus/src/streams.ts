// Creates or updates the JetStream streams Gantry needs. Idempotent: every service calls it
// at start, so the first one up creates them and a config change rolls out by restart.
import type { NatsConnection } from '@nats-io/transport-node';
import { nanos } from '@nats-io/transport-node';
import { jetstreamManager, JetStreamApiError, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { streams, type StreamSpec } from './subjects.js';

export async function ensureStreams(nc: NatsConnection, specs: StreamSpec[] = Object.values(streams)): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const spec of specs) {
    const config = {
      name: spec.name,
      subjects: spec.subjects,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(spec.maxAgeSec * 1000),
      max_bytes: spec.maxBytes,
      duplicate_window: nanos(spec.duplicateWindowSec * 1000),
    };
    try {
      await jsm.streams.add(config);
    } catch (err) {
      // It exists (another service created it, or an earlier start): bring its limits up to date.
      if (!(err instanceof JetStreamApiError) || !/already in use/i.test(err.message)) throw err;
      await jsm.streams.update(spec.name, config);
    }
  }
}
