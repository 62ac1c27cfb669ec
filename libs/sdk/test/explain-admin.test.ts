// explainJob and the admin RPCs (scheduling policy) against a real in-process grpc-js server.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Metadata } from '@grpc/grpc-js';
import { ExplainJobResponse, JobState, type ExplainJobRequest, type SetSchedulingConfigRequest } from '@gantry/proto';
import { GantryClient, GantryError, status } from '../src/index.js';
import { startTestServer, statusError, type TestServer } from '../src/testing.js';

const T0 = new Date('2026-01-01T12:00:00Z');
const STORED = { tenants: { ml: { weight: 2, nominalGpus: 16 } }, backfill: { enabled: true } };

const seen = { explains: [] as ExplainJobRequest[], sets: [] as SetSchedulingConfigRequest[], gets: 0, metadata: [] as Metadata[] };
let failures: status[] = [];
/** What GetSchedulingConfig answers; a test may make it send something that is not a JSON object. */
let storedJson = JSON.stringify(STORED);

function reset() {
  seen.explains = [];
  seen.sets = [];
  seen.gets = 0;
  seen.metadata = [];
  failures = [];
  storedJson = JSON.stringify(STORED);
}

const injected = () => {
  const failure = failures.shift();
  return failure === undefined ? undefined : statusError(failure, `injected ${status[failure]}`);
};

let server: TestServer;
let client: GantryClient;

beforeAll(async () => {
  server = await startTestServer({
    jobs: {
      explainJob(call, cb) {
        seen.explains.push(call.request);
        seen.metadata.push(call.metadata);
        const err = injected();
        if (err) return cb(err);
        if (call.request.jobId === 'missing') return cb(statusError(status.NOT_FOUND, 'job missing not found'));
        cb(null, ExplainJobResponse.fromPartial({
          jobId: call.request.jobId,
          state: JobState.JOB_STATE_PENDING,
          queuePosition: 3,
          pendingReason: 'no-capacity',
          message: 'needs 4 nodes with 8 free GPUs, 2 fit',
          rejections: [{ reason: 'insufficient free GPUs', nodes: 4011 }],
          reservationStart: new Date(T0.getTime() + 720_000),
          reservationNodes: ['node-1', 'node-2'],
          evaluatedAt: T0,
        }));
      },
    },
    admin: {
      getSchedulingConfig(call, cb) {
        seen.gets++;
        seen.metadata.push(call.metadata);
        cb(injected() ?? null, { configJson: storedJson });
      },
      setSchedulingConfig(call, cb) {
        seen.sets.push(call.request);
        const err = injected();
        if (err) return cb(err);
        if (call.request.configJson.includes('-5')) {
          return cb(statusError(status.INVALID_ARGUMENT, 'config_json: invalid scheduling config:\n  tenants.ml.nominalGpus: expected an integer >= 0, got -5\n  fairShare: unknown field'));
        }
        // The server stores the policy with defaults filled in.
        cb(null, { configJson: JSON.stringify({ ...STORED, preemption: { enabled: true } }) });
      },
    },
  });
  client = new GantryClient({ address: server.address, retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 2 }, token: 'tok', env: {} });
});
afterAll(async () => {
  client.close();
  await server.close();
});
afterEach(reset);

describe('explainJob', () => {
  it('returns the response with dates and rejections decoded', async () => {
    const res = await client.explainJob('j-7');
    expect(seen.explains).toEqual([{ jobId: 'j-7' }]);
    expect(res).toMatchObject({ jobId: 'j-7', state: JobState.JOB_STATE_PENDING, queuePosition: 3, pendingReason: 'no-capacity', reservationNodes: ['node-1', 'node-2'] });
    expect(res.rejections).toEqual([{ reason: 'insufficient free GPUs', nodes: 4011 }]);
    expect(res.reservationStart).toEqual(new Date('2026-01-01T12:12:00Z'));
    expect(res.evaluatedAt).toEqual(T0);
    expect(seen.metadata[0]?.get('authorization')).toEqual(['Bearer tok']);
  });

  it('is a read: retried on UNAVAILABLE and DEADLINE_EXCEEDED', async () => {
    failures = [status.UNAVAILABLE, status.DEADLINE_EXCEEDED];
    await expect(client.explainJob('j-7')).resolves.toMatchObject({ jobId: 'j-7' });
    expect(seen.explains).toHaveLength(3);
  });

  it('does not retry NOT_FOUND', async () => {
    await expect(client.explainJob('missing')).rejects.toMatchObject({ name: 'GantryError', code: status.NOT_FOUND, details: 'job missing not found' });
    expect(seen.explains).toHaveLength(1);
  });
});

describe('scheduling config', () => {
  it('get: the parsed document and the raw text, over the same channel', async () => {
    const res = await client.getSchedulingConfig();
    expect(res).toEqual({ config: STORED, configJson: JSON.stringify(STORED) });
    expect(seen.metadata[0]?.get('authorization')).toEqual(['Bearer tok']);
  });

  it('get is a read (retried on DEADLINE_EXCEEDED)', async () => {
    failures = [status.DEADLINE_EXCEEDED];
    await expect(client.getSchedulingConfig()).resolves.toMatchObject({ config: STORED });
    expect(seen.gets).toBe(2);
  });

  it.each([['not json', /not JSON/], ['[1, 2]', /not a JSON object/], ['null', /not a JSON object/]])('get: a server text %j is INTERNAL', async (text, message) => {
    storedJson = text;
    const err = await client.getSchedulingConfig().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GantryError);
    expect(err).toMatchObject({ code: status.INTERNAL });
    expect((err as GantryError).details).toMatch(message);
  });

  it('set: an object is sent as its JSON; resolves to the stored policy', async () => {
    const res = await client.setSchedulingConfig(STORED);
    expect(seen.sets).toEqual([{ configJson: JSON.stringify(STORED) }]);
    expect(res.config).toEqual({ ...STORED, preemption: { enabled: true } });
    expect(JSON.parse(res.configJson)).toEqual(res.config);
  });

  it('set: a string (YAML) is sent unchanged', async () => {
    const yaml = 'tenants:\n  ml: { weight: 2, nominalGpus: 16 }\n# comment\n';
    await client.setSchedulingConfig(yaml);
    expect(seen.sets).toEqual([{ configJson: yaml }]);
  });

  it('set: INVALID_ARGUMENT keeps every problem and is not retried', async () => {
    const err = await client.setSchedulingConfig({ tenants: { ml: { nominalGpus: -5 } } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((err as GantryError).details.split('\n')).toHaveLength(3);
    expect(seen.sets).toHaveLength(1);
  });

  it('set is idempotent: retried on UNAVAILABLE, not on DEADLINE_EXCEEDED', async () => {
    failures = [status.UNAVAILABLE];
    await expect(client.setSchedulingConfig('{}')).resolves.toMatchObject({ config: { backfill: { enabled: true } } });
    expect(seen.sets).toHaveLength(2);
    reset();
    failures = [status.DEADLINE_EXCEEDED];
    await expect(client.setSchedulingConfig('{}')).rejects.toMatchObject({ code: status.DEADLINE_EXCEEDED });
    expect(seen.sets).toHaveLength(1);
  });

  it('answers UNIMPLEMENTED when the server lacks the admin service', async () => {
    const bare = await startTestServer({ jobs: {} });
    const c = new GantryClient({ address: bare.address, retry: false, env: {} });
    await expect(c.getSchedulingConfig()).rejects.toMatchObject({ code: status.UNIMPLEMENTED });
    c.close();
    await bare.close();
  });
});
