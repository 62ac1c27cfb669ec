// `pnpm fuzz`: every public gRPC method of the gateway fed generated inputs (fast-check): random
// fields of the method's request (oversize strings, odd Unicode, control characters, huge
// lists and maps), the request's valid encoding with bytes flipped, and plain random bytes.
//
// Phase 1, in process: each input goes through the gateway's strict decoder and its admission
// (size bounds, then the validation rules where the method has them), exactly as a call would.
// Asserts no exception other than a clean INVALID_ARGUMENT and no slow input.
// Phase 2, over the network: a real stack (gateway with token auth and a rate limit, scheduler,
// NATS, Redis) gets inputs on every method, with an admin token, a user token or none. Asserts
// every answer is a deliberate status (never INTERNAL, UNKNOWN, or a hang past the deadline),
// the gateway still answers afterwards, and its memory and Redis's key count stay bounded.
//
// Options (environment): FUZZ_RUNS (inputs per method in phase 1, default 100000),
// FUZZ_NET_RUNS (per method in phase 2, default 500), FUZZ_SEED, FUZZ_CONCURRENCY (default 16).
// Prints the counts; exits 1 on any failure, printing the input (hex) that caused it.
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { AdminServiceService, AuthServiceService, JobServiceService, JobSpec, NodeServiceService } from '@gantry/proto';
import { boundedDetails, generateSigningKey, isMalformed, signToken, strictService } from '@gantry/auth';
import { admitListJobs, admitListNodes, admitSubmit, admitToken, checkBounds } from '../../services/gateway/src/admission/shared.js';
import { TestStack } from '../harness/stack.js';

type MethodDef = { path: string; requestStream: boolean; responseStream: boolean; requestSerialize: (v: unknown) => Buffer; requestDeserialize: (b: Buffer) => unknown };
type Service = Record<string, MethodDef>;

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 100_000);
const NET_RUNS = Number(process.env['FUZZ_NET_RUNS'] ?? 500);
const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const CONCURRENCY = Number(process.env['FUZZ_CONCURRENCY'] ?? 16);
/** An input slower than this is a failure: a hang, not a slow machine or a GC pause. */
const SLOW_MS = 1_000;

const services: Service[] = [JobServiceService, NodeServiceService, AdminServiceService, AuthServiceService] as unknown as Service[];
const methods = services.flatMap((s) => Object.values(s));

// --- input generation -------------------------------------------------------------------

const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 64 }) },
  { weight: 2, arbitrary: fc.constantFrom('', 'j-1', 'node-0', 'alice', 'default', 'critical', 'normal', 'a.b.>', 'x\ny', 'nul\0', '/tmp', '../../etc', 'MASTER_ADDR', '\u{FFFD}', 'é'.repeat(100)) },
  { weight: 1, arbitrary: fc.integer({ min: 120, max: 300_000 }).map((n) => 'x'.repeat(n)) },
);
const num = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, 8, 4096, 4097, 2 ** 32 - 1), fc.nat(16));
const list = fc.oneof(
  { weight: 6, arbitrary: fc.array(text, { maxLength: 6 }) },
  { weight: 2, arbitrary: fc.array(fc.nat(12), { maxLength: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 6_000 }).map((n) => Array.from({ length: n }, (_, i) => `a${i}`)) },
);
const map = fc.oneof(
  { weight: 6, arbitrary: fc.dictionary(text, text, { maxKeys: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: 500, max: 2_000 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, 'v']))) },
);

/** Random values for the fields of a message, shaped by its defaults (`create()`). */
function fieldsOf(defaults: Record<string, unknown>, nested: Record<string, fc.Arbitrary<unknown>> = {}): fc.Arbitrary<Record<string, unknown>> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [k, v] of Object.entries(defaults)) {
    if (nested[k]) shape[k] = nested[k];
    else if (typeof v === 'string') shape[k] = text;
    else if (typeof v === 'number') shape[k] = num;
    else if (typeof v === 'boolean') shape[k] = fc.boolean();
    else if (Array.isArray(v)) shape[k] = list;
    else if (v && typeof v === 'object') shape[k] = map;
  }
  return fc.record(shape, { requiredKeys: [] });
}

const spec = fieldsOf(JobSpec.create() as unknown as Record<string, unknown>).map((s) => JobSpec.fromPartial(s as Partial<JobSpec>));

function requestArbitrary(m: MethodDef): fc.Arbitrary<Buffer> {
  const defaults = m.requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
  const structured = fieldsOf(defaults, 'spec' in defaults || m.path.endsWith('/SubmitJob') ? { spec } : {});
  const encode = (v: unknown): Buffer => {
    try { return m.requestSerialize(v); } catch { return Buffer.from(JSON.stringify(v).slice(0, 64)); }
  };
  const encoded = structured.map(encode);
  const flipped = fc.tuple(encoded, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })).map(([b, flips]) => {
    const out = Buffer.from(b);
    for (const [at, byte] of flips) if (out.length > 0) out[at % out.length] = byte;
    return out;
  });
  const bytes = fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b));
  return fc.oneof({ weight: 5, arbitrary: encoded }, { weight: 3, arbitrary: flipped }, { weight: 2, arbitrary: bytes });
}

// --- phase 1: decoding and admission in process -------------------------------------------

const strict = Object.fromEntries(services.flatMap((s) => Object.values(strictService(s as never) as Service)).map((m) => [m.path, m]));

/** What the gateway's handler does with a decoded request before forwarding it (validation only). */
function admit(path: string, req: Record<string, unknown>): void {
  checkBounds(req);
  const method = path.slice(path.lastIndexOf('/') + 1);
  if (method === 'SubmitJob') admitSubmit(req as never);
  else if (method === 'ListJobs') admitListJobs(req as never);
  else if (method === 'ListNodes') admitListNodes(req as never);
  else if (typeof req['jobId'] === 'string') admitToken('job_id', req['jobId']);
  else if (typeof req['name'] === 'string' && method !== 'WhoAmI') admitToken('name', req['name']);
}

/** `runs` inputs, generated a thousand at a time so oversize ones do not pile up in memory. */
function* inChunks<T>(arb: fc.Arbitrary<T>, runs: number, seed: number): Generator<T> {
  for (let done = 0, chunk = 0; done < runs; chunk++) {
    const samples = fc.sample(arb, { numRuns: Math.min(1_000, runs - done), seed: seed + chunk });
    done += samples.length;
    yield* samples;
  }
}

function phase1(): { inputs: number; failures: string[] } {
  const failures: string[] = [];
  let inputs = 0;
  for (const [i, m] of methods.entries()) {
    const def = strict[m.path]!;
    let slowest = 0;
    let slowestInput = '';
    let done = 0;
    for (const bytes of inChunks(requestArbitrary(m), RUNS, SEED + i * 100_003)) {
      done++;
      inputs++;
      const t0 = performance.now();
      let req: unknown;
      try {
        req = def.requestDeserialize(bytes);
      } catch (err) {
        failures.push(`${m.path}: the strict decoder threw ${(err as Error).message} on ${bytes.toString('hex').slice(0, 200)}`);
        continue;
      }
      if (!isMalformed(req)) {
        try {
          admit(m.path, req as Record<string, unknown>);
        } catch (err) {
          const e = err as { code?: number; details?: string };
          if (e.code !== grpc.status.INVALID_ARGUMENT) failures.push(`${m.path}: admission threw ${String((err as Error).message).slice(0, 200)} on ${bytes.toString('hex').slice(0, 200)}`);
          // As the guard sends it (validation joins every problem; the guard bounds the message).
          else if (boundedDetails(e.details ?? '').length > 1_100) failures.push(`${m.path}: an INVALID_ARGUMENT of ${e.details!.length} characters (values must be quoted as prefixes)`);
        }
      }
      const took = performance.now() - t0;
      if (took > slowest) { slowest = took; slowestInput = `${bytes.length} bytes: ${bytes.toString('hex').slice(0, 80)}`; }
    }
    if (slowest > SLOW_MS) failures.push(`${m.path}: an input took ${slowest.toFixed(0)} ms to decode and admit (${slowestInput})`);
    process.stdout.write(`  ${m.path}: ${done} inputs, slowest ${slowest.toFixed(1)} ms\n`);
    if (failures.length > 20) break;
  }
  return { inputs, failures };
}

// --- phase 2: a real gateway ----------------------------------------------------------------

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function phase2(): Promise<{ calls: number; codes: Record<string, number>; failures: string[] }> {
  const key = await generateSigningKey('fuzz');
  const jwks = join(mkdtempSync(join(tmpdir(), 'gantry-fuzz-')), 'jwks.json');
  writeFileSync(jwks, JSON.stringify(key.jwks));
  const stack = new TestStack({ agents: 0, env: { gateway: { GATEWAY_AUTH: 'token', GATEWAY_JWT_KEYS_FILE: jwks, GATEWAY_JWT_ISSUER: 'fuzz', GATEWAY_RATE_LIMIT: '100000/100000', LOG_LEVEL: 'warn' } } });
  await stack.start();
  const failures: string[] = [];
  const codes: Record<string, number> = {};
  let calls = 0;
  const admin = await signToken(key, { subject: 'fuzz-admin', roles: ['admin'], issuer: 'fuzz' });
  const user = await signToken(key, { subject: 'fuzz-user', roles: ['user'], tenants: ['default'], issuer: 'fuzz' });
  const client = new grpc.Client(stack.gatewayAddr, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 8 * 1024 * 1024 });
  const pid = stack.gateway.pid!;
  const rssBefore = rssKb(pid);
  const keysBefore = await stack.redis.dbsize();
  const identity = (b: Buffer) => b;
  const send = (m: MethodDef, bytes: Buffer, token: string | undefined) => new Promise<grpc.StatusObject>((resolve) => {
    const md = new grpc.Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    const deadline = Date.now() + 5_000;
    if (m.responseStream) {
      const s = client.makeServerStreamRequest(m.path, identity, identity, bytes, md, { deadline });
      s.on('data', () => undefined);
      s.on('error', () => undefined);
      s.on('status', resolve);
    } else {
      const c = client.makeUnaryRequest(m.path, identity, identity, bytes, md, { deadline }, () => undefined);
      c.on('status', resolve);
    }
  });
  try {
    for (const [i, m] of methods.entries()) {
      const inputs = fc.sample(fc.tuple(requestArbitrary(m), fc.constantFrom<string | undefined>(admin, admin, user, undefined)), { numRuns: NET_RUNS, seed: SEED + 1000 + i });
      let next = 0;
      const worker = async () => {
        while (next < inputs.length) {
          const [bytes, token] = inputs[next++]!;
          const st = await send(m, bytes, token);
          calls++;
          const name = grpc.status[st.code] ?? String(st.code);
          codes[name] = (codes[name] ?? 0) + 1;
          if (st.code === grpc.status.INTERNAL || st.code === grpc.status.UNKNOWN || st.code === grpc.status.DEADLINE_EXCEEDED || st.code === grpc.status.UNAVAILABLE) {
            failures.push(`${m.path}: ${name}: ${st.details.slice(0, 200)} on ${bytes.toString('hex').slice(0, 200)}`);
          } else if (st.details.length > 2_000) {
            failures.push(`${m.path}: a status message of ${st.details.length} characters`);
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      process.stdout.write(`  ${m.path}: ${inputs.length} calls\n`);
      if (failures.length > 20) break;
    }
    // Still alive and answering, with bounded memory and Redis keys.
    const alive = await send(AuthServiceService.whoAmI as unknown as MethodDef, Buffer.alloc(0), admin);
    if (alive.code !== grpc.status.OK || !stack.gateway.running) failures.push(`the gateway no longer answers after the fuzzing: ${grpc.status[alive.code]} ${alive.details}`);
    const rssAfter = rssKb(pid);
    const keysAfter = await stack.redis.dbsize();
    process.stdout.write(`  gateway RSS ${Math.round(rssBefore / 1024)} -> ${Math.round(rssAfter / 1024)} MiB; Redis keys ${keysBefore} -> ${keysAfter}\n`);
    if (rssAfter - rssBefore > 300 * 1024) failures.push(`gateway memory grew by ${Math.round((rssAfter - rssBefore) / 1024)} MiB`);
    if (keysAfter - keysBefore > calls / 2 + 100) failures.push(`Redis grew by ${keysAfter - keysBefore} keys over ${calls} calls`);
  } finally {
    client.close();
    await stack.stop();
  }
  return { calls, codes, failures };
}

const t0 = Date.now();
process.stdout.write(`gateway fuzz: ${methods.length} methods, seed ${SEED}\nphase 1 (decode + admission, in process): ${RUNS} inputs per method\n`);
const p1 = phase1();
process.stdout.write(`phase 1: ${p1.inputs} inputs, ${p1.failures.length} failures\n`);
let p2 = { calls: 0, codes: {} as Record<string, number>, failures: [] as string[] };
if (NET_RUNS > 0) {
  process.stdout.write(`phase 2 (real gateway over gRPC): ${NET_RUNS} calls per method\n`);
  p2 = await phase2();
  process.stdout.write(`phase 2: ${p2.calls} calls, statuses ${JSON.stringify(p2.codes)}, ${p2.failures.length} failures\n`);
}
const failures = [...p1.failures, ...p2.failures];
for (const f of failures.slice(0, 20)) process.stdout.write(`FAIL ${f}\n`);
process.stdout.write(`fuzzed ${p1.inputs + p2.calls} inputs in ${((Date.now() - t0) / 1000).toFixed(1)} s (seed ${SEED}): ${failures.length === 0 ? 'no crash, no hang, bounded' : `${failures.length} failures`}\n`);
process.exit(failures.length === 0 ? 0 : 1);
