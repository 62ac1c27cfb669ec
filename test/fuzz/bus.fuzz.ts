// `pnpm fuzz` (after the gateway): every NATS handler of Gantry fed generated inputs (fast-check)
// through a real stack under the bus authorisation: the scheduler's agent-report handlers
// (registration, heartbeat, rank event, XID/host event, telemetry), the checkpoint service's
// report handler and the agent's command handler. Inputs: the message with random fields
// (oversize strings, odd Unicode, huge lists, the real node name or another), its valid encoding
// with bytes flipped, plain random bytes and oversize payloads. The agent-report inputs are sent
// as node-0's agent (a compromised host: the strongest sender the permissions allow); commands as
// the operator user (a leaked credential), some of them validly signed stops so the handler runs
// past the signature check.
//
// Asserts: every process is still running, no handler left its JetStream consumer behind (no
// hang: pending and unacknowledged reach zero), memory and Redis keys stay bounded, every command
// request is answered, and a real job still runs end to end.
//
// Options (environment): FUZZ_BUS_RUNS (inputs per handler, default 100000), FUZZ_SEED,
// FUZZ_BUS_HANDLERS (only these, by printed name, comma-separated).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AgentCommand, AgentCommandReply, CheckpointReport, JobState, NodeHeartbeat, RankEvent, RegisterNodeRequest, StopRank, TelemetryBatch, XidEvent,
} from '@gantry/proto';
import { agentInboxPrefix, consumers, decode, encode, streams, subjects, type MessageCodec } from '@gantry/bus';
import { natsAuthenticator } from '@gantry/service-kit/connections';
import { keys } from '@gantry/store';
import { GantryClient } from '@gantry/sdk';
import { TestStack, eventually } from '../harness/stack.js';

const RUNS = Number(process.env['FUZZ_BUS_RUNS'] ?? 100_000);
const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const NODE = 'node-0';
/** Only these handlers (comma-separated names as printed, e.g. "agent command"); default all. */
const ONLY = process.env['FUZZ_BUS_HANDLERS']?.split(',').map((s) => s.trim());
const wanted = (name: string) => !ONLY || ONLY.includes(name);
/** NATS refuses payloads over its max_payload (1 MiB by default); stay under it. */
const MAX_PAYLOAD = 900 * 1024;

// --- input generation -------------------------------------------------------------------

const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 3, arbitrary: fc.constantFrom(NODE, 'node-1', '', 'j-1', 'a.b.>', 'x\ny', 'nul\0', '../../etc', '\u{FFFD}', 'é'.repeat(100)) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 64 }) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 20_000 }).map((n) => 'x'.repeat(n)) },
);
const num = fc.oneof(fc.nat(16), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, 2 ** 32 - 1));
const list = fc.oneof(
  { weight: 6, arbitrary: fc.array(text, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.integer({ min: 500, max: 3_000 }).map((n) => Array.from({ length: n }, (_, i) => `a${i}`)) },
);

/** Random fields for a message, shaped by its defaults; nested messages and dates are left to the codec's defaults. */
function fieldsOf(defaults: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [k, v] of Object.entries(defaults)) {
    if (k === 'node') shape[k] = fc.oneof({ weight: 3, arbitrary: fc.constant(NODE) }, { weight: 1, arbitrary: text });
    else if (typeof v === 'string') shape[k] = text;
    else if (typeof v === 'number') shape[k] = num;
    else if (typeof v === 'boolean') shape[k] = fc.boolean();
    else if (Array.isArray(v)) shape[k] = list;
  }
  return fc.record(shape, { requiredKeys: [] });
}

interface Codec<T> extends MessageCodec<T> {
  create(base?: Partial<T>): T;
  fromPartial(o: unknown): T;
}

/** Inputs for one message type: random fields, flipped bytes of a valid encoding, random bytes, oversize. */
function inputs<T>(codec: Codec<T>): fc.Arbitrary<Uint8Array> {
  const safeEncode = (v: Record<string, unknown>): Uint8Array => {
    try { return encode(codec, codec.fromPartial(v)); } catch { return new TextEncoder().encode(JSON.stringify(v).slice(0, 64)); }
  };
  const structured = fieldsOf(codec.create() as unknown as Record<string, unknown>).map(safeEncode);
  return fc.oneof(
    { weight: 60, arbitrary: structured },
    { weight: 20, arbitrary: fc.tuple(structured, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 })).map(([b, flips]) => {
      const out = Uint8Array.from(b);
      for (const [i, x] of flips) if (out.length > 0) out[i % out.length]! ^= x;
      return out;
    }) },
    { weight: 20, arbitrary: fc.uint8Array({ maxLength: 256 }) },
    // Rare (they fill streams fast) but present: payloads near NATS's limit.
    { weight: 1, arbitrary: fc.integer({ min: 64 * 1024, max: MAX_PAYLOAD }).map((n) => new Uint8Array(n).fill(0x0a)) },
  );
}

/** n inputs, generated in batches so that only one batch is held in memory at a time. */
async function forEachBatch<T>(arb: fc.Arbitrary<T>, n: number, seed: number, each: (batch: T[]) => Promise<void>): Promise<number> {
  const size = 2_000;
  let done = 0;
  for (let b = 0; done < n; b++) {
    const batch = fc.sample(arb, { numRuns: Math.min(size, n - done), seed: seed * 1_000 + b });
    await each(batch);
    done += batch.length;
  }
  return done;
}

// --- the stack and its probes ------------------------------------------------------------

function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

async function consumerBacklog(nc: NatsConnection, stream: string, durable: string): Promise<number> {
  const info = JSON.parse(new TextDecoder().decode((await nc.request(`$JS.API.CONSUMER.INFO.${stream}.${durable}`, new Uint8Array(), { timeout: 5_000 })).data)) as { num_pending?: number; num_ack_pending?: number; error?: { description: string } };
  if (info.error) throw new Error(`${stream}/${durable}: ${info.error.description}`);
  return (info.num_pending ?? 0) + (info.num_ack_pending ?? 0);
}

/** Publishes a batch and waits for the server to have it, so nothing is dropped as a slow consumer. */
async function publishAll(nc: NatsConnection, subject: string, payloads: Uint8Array[]): Promise<void> {
  for (const p of payloads) nc.publish(subject, p);
  await nc.flush();
}

const failures: string[] = [];
const stack = await new TestStack({ agents: 1 }).start();
const client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 10_000, retry: { maxAttempts: 20 } });
const asAgent = await connect({ servers: stack.nats.url, authenticator: natsAuthenticator(stack.bus.seedFile({ kind: 'agent', node: NODE })), inboxPrefix: agentInboxPrefix(NODE), name: 'fuzz as node-0' });
const operator = await connect({ ...stack.natsOptions(), name: 'fuzz operator' });
const procs = { scheduler: stack.schedulers[0]!, checkpoint: stack.checkpoint, agent: stack.agents[0]!, gateway: stack.gateway };
const rssBefore = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, rssMiB(p.pid)]));
const keysBefore = await stack.redis.dbsize();
let total = 0;
process.stdout.write(`== bus fuzz: ${RUNS} inputs per NATS handler, seed ${SEED} ==\n`);

try {
  // Scheduler and checkpoint service: reports as the node's agent on its own subjects.
  const reports: { name: string; subject: string; codec: Codec<unknown>; consumer?: [string, string] }[] = [
    { name: 'scheduler register', subject: subjects.agentRegister(NODE), codec: RegisterNodeRequest as Codec<unknown> },
    { name: 'scheduler heartbeat', subject: subjects.agentHeartbeat(NODE), codec: NodeHeartbeat as Codec<unknown> },
    { name: 'scheduler rank event', subject: subjects.rankEvent(NODE), codec: RankEvent as Codec<unknown>, consumer: [streams.agentEvents.name, consumers.schedulerAgentEvents] },
    { name: 'scheduler host event', subject: subjects.hostEvent(NODE), codec: XidEvent as Codec<unknown>, consumer: [streams.agentEvents.name, consumers.schedulerHostEvents] },
    { name: 'scheduler telemetry', subject: subjects.telemetry(NODE), codec: TelemetryBatch as Codec<unknown>, consumer: [streams.telemetry.name, consumers.schedulerTelemetry] },
    { name: 'checkpoint report', subject: subjects.checkpointReport('node-0', 'j-fuzz'), codec: CheckpointReport as Codec<unknown>, consumer: [streams.checkpoints.name, consumers.checkpointReports] },
  ];
  for (const [i, r] of reports.entries()) {
    if (!wanted(r.name)) continue;
    const t0 = performance.now();
    const n = await forEachBatch(inputs(r.codec), RUNS, SEED + i, (batch) => publishAll(asAgent, r.subject, batch));
    if (r.consumer) {
      const [stream, durable] = r.consumer;
      try {
        await eventually(`${r.name}: consumer ${durable} to drain`, async () => ((await consumerBacklog(operator, stream, durable)) === 0 ? true : undefined), 600_000, 1_000);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    total += n;
    process.stdout.write(`  ${r.name.padEnd(22)} ${n} inputs in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }

  // The agent's command handler: request/reply, every request must be answered.
  if (wanted('agent command')) {
    const t0 = performance.now();
    const epoch = Number(await stack.redis.get(keys.leaderEpoch)) || 1;
    const u32 = fc.oneof(fc.nat(8), fc.constantFrom(2 ** 32 - 1));
    // Few distinct ranks: the agent remembers each stop (to refuse a late assignment), and a
    // signed command is the scheduler's word, so it is not what must stay bounded here.
    const stop = fc.record({ jobId: fc.constantFrom('j-fuzz-0', 'j-fuzz-1', 'j-fuzz-2', 'x\ny', ''), attempt: u32, rank: u32, reason: text }).map((s) => StopRank.create({ ...s, graceSeconds: 1 }));
    const signedStops = stop.map((s) => stack.bus.signCommand(NODE, AgentCommand.create({ epoch, command: { $case: 'stop', stop: s } })));
    const arb = fc.oneof({ weight: 8, arbitrary: inputs(AgentCommand as Codec<unknown>) }, { weight: 2, arbitrary: signedStops });
    let unanswered = 0;
    let accepted = 0;
    const window = 256;
    const n = await forEachBatch(arb, RUNS, SEED + 100, async (payloads) => {
      for (let i = 0; i < payloads.length; i += window) {
        await Promise.all(payloads.slice(i, i + window).map(async (p) => {
          try {
            const reply = decode(AgentCommandReply, (await operator.request(subjects.agentCommand(NODE), p, { timeout: 10_000 })).data, 'reply');
            if (reply.ok) accepted++;
          } catch {
            unanswered++;
          }
        }));
      }
    });
    total += n;
    process.stdout.write(`  ${'agent command'.padEnd(22)} ${n} inputs in ${((performance.now() - t0) / 1000).toFixed(1)} s (${accepted} signed stops accepted, ${unanswered} unanswered)\n`);
    if (unanswered > 0) failures.push(`${unanswered} commands were not answered by the agent`);
  }

  for (const [name, p] of Object.entries(procs)) if (!p.running) failures.push(`${name} is no longer running`);
  const rssAfter = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, rssMiB(p.pid)]));
  const keysAfter = await stack.redis.dbsize();
  process.stdout.write(`  RSS MiB before -> after: ${Object.keys(procs).map((k) => `${k} ${rssBefore[k]} -> ${rssAfter[k]}`).join(', ')}\n  Redis keys ${keysBefore} -> ${keysAfter}\n`);
  for (const k of Object.keys(procs)) if (rssAfter[k]! - rssBefore[k]! > 400) failures.push(`${k} memory grew by ${rssAfter[k]! - rssBefore[k]!} MiB`);
  // Bounded: a few keys per node and per job are expected; one per input is not.
  if (keysAfter - keysBefore > 1_000) failures.push(`Redis grew by ${keysAfter - keysBefore} keys`);

  // Still a working cluster: the node registers again (its record may hold fuzzed fields) and runs a job.
  await stack.agents[0]!.restart();
  const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 1, command: ['true'] });
  const done = await eventually('a job after the fuzzing', async () => {
    const j = await client.getJob(job!.id);
    return j.state === JobState.JOB_STATE_SUCCEEDED || j.state === JobState.JOB_STATE_FAILED ? j : undefined;
  }, 120_000, 500).catch(async (err: Error) => {
    // Say where it stuck: the job as the gateway has it, and the last lines of the services.
    const j = await client.getJob(job!.id).catch(() => undefined);
    const tail = (name: string) => stack.logsOf(name).split('\n').slice(-25).join('\n');
    throw new Error(`${err.message}\njob ${j ? `${JobState[j.state]}: ${j.reason} ${j.explanation}` : 'unreadable'}\n--- scheduler-0\n${tail('scheduler-0')}\n--- agent-${NODE}\n${tail(`agent-${NODE}`)}`);
  });
  if (done.state !== JobState.JOB_STATE_SUCCEEDED) failures.push(`a job after the fuzzing ended ${JobState[done.state]}: ${done.reason}`);
  for (const name of ['scheduler-0', 'checkpoint', `agent-${NODE}`]) if (/unhandled rejection|uncaughtException/i.test(stack.logsOf(name))) failures.push(`${name} logged an unhandled error`);
} catch (err) {
  failures.push(`fuzzing stopped: ${(err as Error).stack ?? String(err)}`);
} finally {
  await Promise.all([asAgent.close(), operator.close()]);
  client.close();
  await stack.stop();
}

process.stdout.write(`bus fuzz: ${total} inputs over ${ONLY?.length ?? 7} NATS handlers, ${failures.length} failures\n`);
for (const f of failures) process.stdout.write(`  FAIL ${f}\n`);
process.exit(failures.length === 0 ? 0 : 1);
