// Builds the outbox entry for a transition: the event id is chosen before the write so the
// same id travels through the outbox, JetStream de-duplication and consumers.
import { randomUUID } from 'node:crypto';
import { Job, JobEvent, JobState, NodeEvent, NodeHostEvent, NodeState } from '@gantry/proto';
import { encode } from '@gantry/bus';

export interface OutboxEvent {
  subject: string;
  id: string;
  data: Buffer;
}

export function jobEvent(subject: string, from: JobState, job: Job, reason: string, time: Date): OutboxEvent {
  const id = randomUUID();
  // Every field given, so encode needs no create() (which would deep-copy the job just to
  // encode it); the bytes are wrapped, not copied (encode's writer is reused, its bytes a copy).
  const event: JobEvent = { eventId: id, jobId: job.id, fromState: from, toState: job.state, attempt: job.attempt, reason, time, job };
  const bytes = encode(JobEvent, event);
  return { subject, id, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

export function nodeEvent(subject: string, name: string, from: NodeState, to: NodeState, reason: string, time: Date): OutboxEvent & { logEntry: Buffer } {
  const id = randomUUID();
  const event = NodeEvent.create({ eventId: id, nodeName: name, fromState: from, toState: to, reason, time });
  const logEntry = Buffer.from(NodeHostEvent.encode({ time, event: { $case: 'transition', transition: event } }).finish());
  return { subject, id, data: Buffer.from(NodeEvent.encode(event).finish()), logEntry };
}
