// main() in-process: usage errors need no server; the rest runs against a fake gateway
// (a real grpc-js server with hand-written handlers) on a random port.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ExplainJobResponse,
  GetNodeTelemetryResponse,
  Job,
  JobEvent,
  JobState,
  Launcher,
  LogStream,
  TopologyRequirement,
  type GetNodeTelemetryRequest,
  type ListJobsRequest,
  type ListNodeEventsRequest,
  type SetSchedulingConfigRequest,
  type StreamLogsRequest,
  type SubmitJobRequest,
} from '@gantry/proto';
import { status } from '@gantry/sdk';
import { startTestServer, statusError, type TestServer } from '@gantry/sdk/testing';
import { main } from '../src/index.js';
import { NOW, ago, sampleEvents, sampleJob, sampleNode, sampleTelemetry } from './fixtures.js';

async function run(argv: string[], env: Record<string, string | undefined> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
    now: () => NOW,
    cwd: '/home/me/llama',
  });
  return { code, stdout, stderr };
}

const oneLine = (s: string) => s.endsWith('\n') && s.indexOf('\n') === s.length - 1;

describe('usage errors exit 2 with one line', () => {
  it.each([
    [['frob'], "gantry: unknown command 'frob'"],
    [['jbo', 'list'], "gantry: unknown command 'jbo' (Did you mean job?)"],
    [['job', 'list', '--bogus'], "gantry: unknown option '--bogus'"],
    [['job', 'status'], "gantry: missing required argument 'id'"],
    [['job', 'status', 'a', 'b'], 'gantry: too many arguments'],
    [['job', 'explain'], "gantry: missing required argument 'id'"],
    [['admin', 'config', 'set'], "gantry: required option '-f, --file <path>' not specified"],
    [['admin', 'config', 'set', '-f', '/nonexistent/policy.yaml'], 'gantry: cannot read config file: ENOENT'],
    [['admin', 'config', 'set', '-f', tmpdir()], 'gantry: cannot read config file: EISDIR'],
    [['admin', 'config', 'frob'], "gantry: unknown command 'frob'"],
    [['job', 'submit', '--nodes', '0', '--', 'x'], "gantry: option '--nodes <n>' argument '0' is invalid."],
    [['job', 'submit', '--time-limit', '5x', '--', 'x'], "gantry: option '--time-limit <duration>' argument '5x' is invalid. invalid duration"],
    [['job', 'submit', '--env', 'FOO', '--', 'x'], "gantry: option '--env <KEY=VALUE>' argument 'FOO' is invalid. expected KEY=VALUE"],
    [['job', 'submit', '--topology', 'rack', '--', 'x'], "gantry: option '--topology <req>' argument 'rack' is invalid. unknown topology"],
    [['job', 'list', '--state', 'bogus'], "gantry: option '--state <state>' argument 'bogus' is invalid. unknown job state"],
    [['job', 'logs', 'j', '--node-rank', '-1'], "gantry: option '--node-rank <n>' argument '-1' is invalid."],
    [['job', 'submit', '--launcher', 'mpi', '--', 'x'], "gantry: option '--launcher <mode>' argument 'mpi' is invalid. unknown launcher \"mpi\" (one of per-node, per-gpu)"],
    [['-o', 'yaml', 'job', 'list'], "gantry: option '-o, --output <format>' argument 'yaml' is invalid."],
    [['--timeout', 'soon', 'job', 'list'], "gantry: option '--timeout <duration>' argument 'soon' is invalid."],
    [['job', 'submit'], 'gantry: no command: give it after "--"'],
    [['job', 'submit', '-f', '/nonexistent/job.yaml'], 'gantry: cannot read job file: ENOENT'],
    [['--ca', '/nonexistent/ca.pem', 'job', 'list'], 'gantry: cannot read CA certificate: ENOENT'],
  ])('%j', async (argv, message) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(message)).toBe(true);
    expect(oneLine(r.stderr)).toBe(true);
  });

  it('names an invalid job file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-cli-'));
    const path = join(dir, 'job.yaml');
    writeFileSync(path, 'nodes: [1\n');
    const r = await run(['job', 'submit', '-f', path]);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toMatch(new RegExp(`^gantry: ${path}: invalid YAML: .*line \\d`));
    expect(oneLine(r.stderr)).toBe(true);
  });

  it('shows help on stderr and exits 2 when a subcommand is missing', async () => {
    const r = await run(['job']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: gantry job');
  });
});

describe('help and version exit 0', () => {
  it.each([[['--help']], [['job', '--help']], [['job', 'submit', '--help']], [['help', 'node']], [['admin', 'config', '--help']], [['job', 'explain', '--help']], [['--version']]])('%j', async (argv) => {
    const r = await run(argv);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toBe('');
    expect(r.stderr).toBe('');
  });
});

// --- against a fake gateway ---

const seen = { explains: [] as string[], getJobs: 0, configSets: [] as SetSchedulingConfigRequest[], telemetry: [] as GetNodeTelemetryRequest[], nodeEvents: [] as ListNodeEventsRequest[], submits: [] as SubmitJobRequest[], lists: [] as ListJobsRequest[], logs: [] as StreamLogsRequest[], metadata: [] as { get(key: string): unknown[] }[], watches: 0 };
/** The states watchJob streams for a job id; "flaky" ends the first stream early. */
const lifecycles: Record<string, JobState[]> = {
  'j-ok': [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED],
  'j-bad': [JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_FAILED],
  'j-new': [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED],
};

function events(jobId: string, states: JobState[]): JobEvent[] {
  return states.map((s, i) =>
    JobEvent.fromPartial({ eventId: `${jobId}-${i}`, jobId, fromState: states[i - 1] ?? 0, toState: s, attempt: 1, time: NOW, reason: s === JobState.JOB_STATE_FAILED ? 'rank 1 exited with code 3' : '' }),
  );
}

const pendingExplain = ExplainJobResponse.fromPartial({
  jobId: 'j-pend',
  state: JobState.JOB_STATE_PENDING,
  queuePosition: 3,
  pendingReason: 'no-capacity',
  message: 'needs 4 nodes with 8 free GPUs, 2 fit',
  quota: 'tenant ml at 16/16 GPUs nominal, borrowing 0/8',
  rejections: [{ reason: 'node quarantined', nodes: 3 }, { reason: 'insufficient free GPUs', nodes: 4011 }, { reason: 'gpu type H100 not in [B200]', nodes: 60 }],
  reservationStart: new Date('2026-01-01T12:12:00Z'),
  reservationNodes: ['node-1', 'node-2', 'node-3', 'node-4'],
  evaluatedAt: ago(2),
});

/** The stored policy (defaults filled in) the fake gateway answers with. */
const POLICY = { tenants: { ml: { weight: 2, nominalGpus: 16, cohort: 'shared', borrowingLimitGpus: 8 } }, defaultTenant: { weight: 1 }, backfill: { enabled: true } };

let server: TestServer;
let addr: string;

beforeAll(async () => {
  server = await startTestServer({
    jobs: {
      submitJob(call, cb) {
        seen.submits.push(call.request);
        // What the gateway answers (its own messages, field names and all).
        if (call.request.spec?.name === 'invalid') {
          return cb(statusError(status.INVALID_ARGUMENT, 'spec.nodes must be between 1 and 4096, got 5000; spec.gpus_per_node must be between 0 and 32, got 40; spec.env.MASTER_PORT is set by Gantry for every rank and cannot be overridden; spec.command[0] (the program) must not be empty; spec.time_limit_seconds must be between 0 and 2592000, got 3456000'));
        }
        if (call.request.spec?.name === 'reused') {
          return cb(statusError(status.ALREADY_EXISTS, `idempotency key "${call.request.idempotencyKey}" already created job j-41 with a different spec; use a new key, or the same spec to get that job back`));
        }
        cb(null, { job: Job.fromPartial({ id: 'j-new', spec: call.request.spec, state: JobState.JOB_STATE_PENDING }), created: seen.submits.length === 1 });
      },
      getJob(call, cb) {
        seen.getJobs++;
        seen.metadata.push(call.metadata);
        if (call.request.jobId === 'j-42') return cb(null, { job: sampleJob });
        cb(statusError(status.NOT_FOUND, `job ${call.request.jobId} not found`));
      },
      listJobs(call, cb) {
        seen.lists.push(call.request);
        const second = call.request.pageToken === 'p2';
        cb(null, { jobs: [second ? Job.fromPartial({ id: 'j-43', state: JobState.JOB_STATE_RUNNING }) : sampleJob], nextPageToken: second ? '' : 'p2' });
      },
      explainJob(call, cb) {
        const { jobId } = call.request;
        seen.explains.push(jobId);
        if (jobId === 'j-pend') return cb(null, pendingExplain);
        if (jobId === 'j-42') return cb(null, ExplainJobResponse.fromPartial({ jobId, state: JobState.JOB_STATE_FAILED, message: sampleJob.reason, placementExplanation: 'leaf switch leaf-2: best fit 1.00 (2 of 2 eligible nodes)' }));
        cb(statusError(status.NOT_FOUND, `job ${jobId} not found`));
      },
      cancelJob(call, cb) {
        cb(null, { job: Job.fromPartial({ id: call.request.jobId, state: JobState.JOB_STATE_CANCELLED, reason: call.request.reason }) });
      },
      watchJob(call) {
        seen.watches++;
        const { jobId } = call.request;
        if (jobId === 'flaky') {
          // First stream: the current state, then the server goes away; the next one replays it and finishes.
          const all = events(jobId, [JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED]);
          for (const ev of seen.watches === 1 ? all.slice(0, 1) : all) call.write({ event: ev });
          return call.end();
        }
        const states = lifecycles[jobId];
        if (!states) return call.emit('error', statusError(status.NOT_FOUND, `job ${jobId} not found`));
        for (const ev of events(jobId, states)) call.write({ event: ev });
        call.end();
      },
      streamLogs(call) {
        seen.logs.push(call.request);
        if (call.request.jobId === 'j-gpu') {
          for (const localRank of [0, 1]) call.write({ jobId: 'j-gpu', attempt: 1, rank: 1, node: 'gpu-02', line: { seq: 1, stream: LogStream.LOG_STREAM_STDOUT, text: 'loss 0.5', time: NOW, localRank } });
          return call.end();
        }
        const line = (rank: number, text: string, stream = LogStream.LOG_STREAM_STDOUT) =>
          call.write({ jobId: call.request.jobId, attempt: 1, rank, node: 'gpu-01', line: { seq: 1, stream, text, time: NOW } });
        line(0, 'step 1');
        line(1, 'warning: slow', LogStream.LOG_STREAM_STDERR);
        line(1, 'step 1\n');
        call.end();
      },
    },
    admin: {
      getSchedulingConfig: (_call, cb) => cb(null, { configJson: JSON.stringify(POLICY) }),
      setSchedulingConfig(call, cb) {
        seen.configSets.push(call.request);
        if (call.request.configJson.includes('-5')) {
          return cb(statusError(status.INVALID_ARGUMENT, 'config_json: invalid scheduling config:\n  tenants.ml.nominalGpus: expected an integer >= 0, got -5\n  fairshare: unknown field (expected one of tenants, defaultTenant, fairShare, preemption, backfill)'));
        }
        cb(null, { configJson: JSON.stringify(POLICY) });
      },
    },
    nodes: {
      listNodes: (_call, cb) => cb(null, { nodes: [sampleNode], nextPageToken: '' }),
      // gpu-01 reports telemetry; gpu-02 is registered but has reported none and has no events.
      getNode: (call, cb) =>
        ['gpu-01', 'gpu-02'].includes(call.request.name)
          ? cb(null, { node: { ...sampleNode, name: call.request.name } })
          : cb(statusError(status.NOT_FOUND, `node ${call.request.name} not found`)),
      getNodeTelemetry(call, cb) {
        seen.telemetry.push(call.request);
        const { name, history } = call.request;
        if (name === 'gpu-01') return cb(null, { latest: sampleTelemetry, history: Array.from({ length: history }, (_, i) => ({ ...sampleTelemetry, seq: sampleTelemetry.seq - 1 - i, time: ago(9 + 5 * i) })) });
        cb(statusError(status.NOT_FOUND, name === 'gpu-02' ? 'node gpu-02 has reported no telemetry yet' : `node ${name} not found`));
      },
      listNodeEvents(call, cb) {
        seen.nodeEvents.push(call.request);
        const { name, limit } = call.request;
        if (name === 'gpu-01') return cb(null, { events: sampleEvents.slice(0, limit || 100) });
        if (name === 'gpu-02') return cb(null, { events: [] });
        cb(statusError(status.NOT_FOUND, `node ${name} not found`));
      },
    },
  });
  addr = server.address;
});
afterAll(() => server.close());
afterEach(() => {
  seen.explains = [];
  seen.getJobs = 0;
  seen.configSets = [];
  seen.telemetry = [];
  seen.nodeEvents = [];
  seen.submits = [];
  seen.lists = [];
  seen.logs = [];
  seen.metadata = [];
  seen.watches = 0;
});

const gantry = (...argv: string[]) => run(['--addr', addr, ...argv]);

describe('job submit', () => {
  it('sends the flags and the command after --', async () => {
    const r = await gantry(
      'job', 'submit', '--name', 'llama', '--tenant', 'ml', '--nodes', '2', '--gpus-per-node', '8', '--gpu-type', 'H100', '--gpu-type', 'A100',
      '--priority', 'high', '--time-limit', '2h', '--topology', 'same-switch', '--env', 'A=1', '--env', 'B=x=y', '--workdir', '/w',
      '--selector', 'zone=a', '--exclude-node', 'gpu-17', '--master-port', '29600', '--stop-grace', '30s', '--idempotency-key', 'k1',
      '--launcher', 'per-gpu', '--run-as', '1001:1001', '--', 'torchrun', '--nproc', '8', 'train.py',
    );
    expect(r).toEqual({ code: 0, stdout: 'job j-new submitted\n', stderr: '' });
    expect(seen.submits[0]).toEqual({
      idempotencyKey: 'k1',
      spec: {
        name: 'llama', tenant: 'ml', nodes: 2, gpusPerNode: 8, gpuTypes: ['H100', 'A100'], command: ['torchrun', '--nproc', '8', 'train.py'],
        env: { A: '1', B: 'x=y' }, workingDir: '/w', priorityClass: 'high', timeLimitSeconds: 7200,
        topology: TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SWITCH, nodeSelector: { zone: 'a' }, excludeNodes: ['gpu-17'],
        masterPort: 29600, stopGraceSeconds: 30, launcher: Launcher.LAUNCHER_PER_GPU, runAsUser: '1001:1001',
      },
    });
  });

  it('starts ranks in the current directory with every GPU of each node by default', async () => {
    await gantry('job', 'submit', '--', 'torchrun', 'train.py');
    expect(seen.submits[0]?.spec).toMatchObject({ workingDir: '/home/me/llama', gpusPerNode: 0, nodes: 1, launcher: Launcher.LAUNCHER_UNSPECIFIED });
  });

  it('names the flags in the server\'s validation problems, all of them on one line', async () => {
    const r = await gantry('job', 'submit', '--name', 'invalid', '--', 'true');
    expect(r).toEqual({
      code: 1, stdout: '',
      stderr: 'gantry: INVALID_ARGUMENT: --nodes must be between 1 and 4096, got 5000; --gpus-per-node must be between 0 and 32, got 40; --env MASTER_PORT is set by Gantry for every rank and cannot be overridden; argument 0 of the command (after --) (the program) must not be empty; --time-limit (seconds) must be between 0 and 2592000, got 3456000\n',
    });
  });

  it('names the job an idempotency key already created with another spec', async () => {
    const r = await gantry('job', 'submit', '--name', 'reused', '--idempotency-key', 'k1', '--', 'true');
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'gantry: ALREADY_EXISTS: idempotency key "k1" already created job j-41 with a different spec; use a new key, or the same spec to get that job back\n' });
  });

  it('reads a job file, lets flags override it, and prints JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-cli-'));
    const path = join(dir, 'job.yaml');
    writeFileSync(path, 'name: from-file\nnodes: 4\nenv: {A: "1"}\ncommand: [python, train.py]\nidempotencyKey: file-key\n');
    const r = await gantry('-o', 'json', 'job', 'submit', '-f', path, '--nodes', '2', '--env', 'B=2');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ job: { id: 'j-new', state: 'JOB_STATE_PENDING', spec: { name: 'from-file', nodes: 2 } }, created: true });
    expect(seen.submits[0]).toMatchObject({ idempotencyKey: 'file-key', spec: { nodes: 2, env: { A: '1', B: '2' }, command: ['python', 'train.py'] } });
  });

  it('generates an idempotency key when none is given', async () => {
    await gantry('job', 'submit', '--', 'true');
    expect(seen.submits[0]?.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.submits[0]?.spec?.nodes).toBe(1);
  });

  it('--wait prints events and exits with the job result', async () => {
    const r = await gantry('job', 'submit', '--wait', '--', 'true');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'job j-new submitted',
      '2026-01-01T12:00:00.000Z  j-new  PENDING  attempt 1',
      '2026-01-01T12:00:00.000Z  j-new  PENDING -> RUNNING  attempt 1',
      '2026-01-01T12:00:00.000Z  j-new  RUNNING -> SUCCEEDED  attempt 1',
      '',
    ]);
  });

  it('--follow streams the logs, then reports the result', async () => {
    const r = await gantry('job', 'submit', '--follow', '--', 'true');
    expect(r).toEqual({ code: 0, stdout: 'job j-new submitted\n[node-rank 0] step 1\n[node-rank 1] step 1\n', stderr: '[node-rank 1] warning: slow\njob j-new SUCCEEDED\n' });
    expect(seen.logs[0]).toMatchObject({ jobId: 'j-new', follow: true });
  });
});

describe('job list', () => {
  it('prints one page as a table, with a hint when there are more', async () => {
    const r = await gantry('job', 'list', '--state', 'failed', '--state', 'running', '--tenant', 'ml', '--limit', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('j-42  llama  ml      FAILED  2x8');
    expect(r.stdout).not.toContain('j-43');
    expect(r.stderr).toBe('(more jobs: use --all)\n');
    expect(seen.lists[0]).toEqual({ states: [JobState.JOB_STATE_FAILED, JobState.JOB_STATE_RUNNING], tenant: 'ml', pageSize: 1, pageToken: '' });
  });

  it('--all follows every page; json is the ListJobsResponse', async () => {
    const r = await gantry('job', 'list', '--all', '--output', 'json');
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { jobs: { id: string }[] };
    expect(body.jobs.map((j) => j.id)).toEqual(['j-42', 'j-43']);
    expect(seen.lists.map((l) => l.pageToken)).toEqual(['', 'p2']);
  });
});

describe('job status', () => {
  it('shows the detailed view', async () => {
    const r = await gantry('job', 'status', 'j-42');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('State:      FAILED\n');
    expect(r.stdout).toContain('  NODE-RANK  NODE    GPUS             PHASE   PID  EXIT     ERROR\n');
    expect(r.stdout).toContain('  1          gpu-02  0,1,2,3,4,5,6,7  EXITED  200  3        -\n');
  });

  it('prints the proto JSON', async () => {
    const r = await gantry('job', 'status', 'j-42', '-o', 'json');
    expect(JSON.parse(r.stdout)).toEqual(Job.toJSON(sampleJob));
  });

  it('exits 1 with one line for a server error', async () => {
    const r = await gantry('job', 'status', 'j-404');
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'gantry: NOT_FOUND: job j-404 not found\n' });
  });

  it('finds the gateway through GANTRY_ADDR and sends GANTRY_TOKEN', async () => {
    const r = await run(['job', 'status', 'j-42'], { GANTRY_ADDR: addr, GANTRY_TOKEN: 'tok' });
    expect(r.code).toBe(0);
    expect(seen.metadata[0]?.get('authorization')).toEqual(['Bearer tok']);
  });
});

describe('job logs', () => {
  it('prefixes node ranks, sends stderr lines to stderr and passes the filters', async () => {
    const r = await gantry('job', 'logs', 'j-42', '-f', '--node-rank', '1', '--attempt', '2');
    expect(r).toEqual({ code: 0, stdout: '[node-rank 0] step 1\n[node-rank 1] step 1\n', stderr: '[node-rank 1] warning: slow\n' });
    expect(seen.logs[0]).toEqual({ jobId: 'j-42', follow: true, rank: 1, attempt: 2 });
    await gantry('job', 'logs', 'j-42', '--rank', '0');
    expect(seen.logs[1]).toMatchObject({ rank: 0 });
  });

  it('per GPU, says which local process wrote a line, and filters by it', async () => {
    const r = await gantry('job', 'logs', 'j-gpu', '--local-rank', '1');
    expect(r).toEqual({ code: 0, stdout: '[node-rank 1 local-rank 1] loss 0.5\n', stderr: '' });
  });

  it('prints JSON lines', async () => {
    const r = await gantry('job', 'logs', 'j-42', '-o', 'json');
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rank: number; line: { text: string } });
    expect(lines.map((l) => l.line.text)).toEqual(['step 1', 'warning: slow', 'step 1\n']);
    expect(seen.logs[0]).toEqual({ jobId: 'j-42', follow: false, attempt: 0 });
  });
});

describe('job watch', () => {
  it('exits 0 when the job succeeds', async () => {
    const r = await gantry('job', 'watch', 'j-ok');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(3);
  });

  it('exits 1 when it fails, with the reason on the last line', async () => {
    const r = await gantry('job', 'watch', 'j-bad');
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('2026-01-01T12:00:00.000Z  j-bad  RUNNING -> FAILED  attempt 1  rank 1 exited with code 3');
    expect(r.stderr).toBe('');
  });

  it('watches again when the stream ends early, without repeating events', async () => {
    const r = await gantry('job', 'watch', 'flaky', '-o', 'json');
    expect(r.code).toBe(0);
    const states = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { toState: string }).toState);
    expect(states).toEqual(['JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED']);
    expect(seen.watches).toBe(2);
  });

  it('exits 1 with one line for an unknown job', async () => {
    const r = await gantry('job', 'watch', 'nope');
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'gantry: NOT_FOUND: job nope not found\n' });
  });
});

describe('job cancel', () => {
  it('prints the new state', async () => {
    expect(await gantry('job', 'cancel', 'j-9', '--reason', 'oops')).toEqual({ code: 0, stdout: 'job j-9 CANCELLED\n', stderr: '' });
  });
});

describe('job explain', () => {
  it('a pending job: why it waits', async () => {
    const r = await gantry('job', 'explain', 'j-pend');
    expect(r).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'job j-pend PENDING, position 3 in the queue',
        'waiting: needs 4 nodes with 8 free GPUs, 2 fit   (reason: no-capacity)',
        'quota: tenant ml at 16/16 GPUs nominal, borrowing 0/8',
        'nodes: 4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in [B200]; 3: node quarantined',
        'reservation: starts in 12m at 12:12:00 on node-1, node-2 (+2 more)',
        'evaluated 2s ago',
        '',
      ].join('\n'),
    });
    expect(seen.getJobs).toBe(0);
  });

  it('a placed (here ended) job: state, reason, placement and the nodes of its current attempt', async () => {
    const r = await gantry('job', 'explain', 'j-42');
    expect(r).toEqual({
      code: 0,
      stderr: '',
      stdout: 'job j-42 FAILED (attempt 1)\nreason: rank 1 exited with code 3\nplacement: leaf switch leaf-2: best fit 1.00 (2 of 2 eligible nodes)\nnodes: gpu-01, gpu-02\n',
    });
    expect(seen.getJobs).toBe(1);
  });

  it('-o json prints the ExplainJobResponse', async () => {
    const r = await gantry('-o', 'json', 'job', 'explain', 'j-pend');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(ExplainJobResponse.toJSON(pendingExplain));
    expect(JSON.parse(r.stdout)).toMatchObject({ state: 'JOB_STATE_PENDING', queuePosition: 3, reservationStart: '2026-01-01T12:12:00.000Z' });
    expect(seen.explains).toEqual(['j-pend']);
  });

  it('an unknown job exits 1 with one line', async () => {
    expect(await gantry('job', 'explain', 'j-404')).toEqual({ code: 1, stdout: '', stderr: 'gantry: NOT_FOUND: job j-404 not found\n' });
  });
});

describe('admin config', () => {
  const policyFile = (name: string, text: string) => {
    const path = join(mkdtempSync(join(tmpdir(), 'gantry-cli-')), name);
    writeFileSync(path, text);
    return path;
  };

  it.each([[[]], [['-o', 'json']]])('get %j prints the policy as indented JSON', async (flags) => {
    const r = await gantry(...flags, 'admin', 'config', 'get');
    expect(r).toEqual({ code: 0, stdout: JSON.stringify(POLICY, null, 2) + '\n', stderr: '' });
  });

  it('set sends a YAML file as it is', async () => {
    const yaml = '# policy\ntenants:\n  ml: { weight: 2, nominalGpus: 16, cohort: shared }\nbackfill:\n  enabled: true\n';
    const path = policyFile('policy.yaml', yaml);
    const r = await gantry('admin', 'config', 'set', '-f', path);
    expect(r).toEqual({ code: 0, stdout: `scheduling config replaced from ${path}\n`, stderr: '' });
    expect(seen.configSets).toEqual([{ configJson: yaml }]);
  });

  it('set -o json prints the stored policy', async () => {
    const json = JSON.stringify({ tenants: { ml: { nominalGpus: 16 } } });
    const r = await gantry('-o', 'json', 'admin', 'config', 'set', '--file', policyFile('policy.json', json));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(POLICY);
    expect(seen.configSets).toEqual([{ configJson: json }]);
  });

  it('an invalid policy exits 1 with every problem on one line', async () => {
    const r = await gantry('admin', 'config', 'set', '-f', policyFile('bad.yaml', 'tenants:\n  ml: { nominalGpus: -5 }\nfairshare: {}\n'));
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'gantry: INVALID_ARGUMENT: config_json: invalid scheduling config: tenants.ml.nominalGpus: expected an integer >= 0, got -5; ' +
        'fairshare: unknown field (expected one of tenants, defaultTenant, fairShare, preemption, backfill)\n',
    });
  });

  it('an unreadable file exits 2 without calling the server', async () => {
    const r = await gantry('admin', 'config', 'set', '-f', '/nonexistent/policy.yaml');
    expect(r.code).toBe(2);
    expect(seen.configSets).toEqual([]);
  });
});

describe('node commands', () => {
  it('lists nodes as a table and as JSON', async () => {
    const table = await gantry('node', 'list');
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('gpu-01  READY  3/4              H100   nvl-1/leaf-2/spine-1  0       3s');
    const json = await gantry('node', 'list', '-o', 'json');
    expect(JSON.parse(json.stdout)).toMatchObject({ nodes: [{ name: 'gpu-01', state: 'NODE_STATE_READY' }] });
  });

  it('shows one node, and NOT_FOUND for an unknown one', async () => {
    const r = await gantry('node', 'show', 'gpu-01');
    expect(r.stdout).toContain('GPUs free:      3/4\n');
    expect(await gantry('node', 'show', 'gpu-99')).toEqual({ code: 1, stdout: '', stderr: 'gantry: NOT_FOUND: node gpu-99 not found\n' });
  });

  it('show: the node details, then its telemetry tables', async () => {
    const r = await gantry('node', 'show', 'gpu-01');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const details = r.stdout.indexOf('Last heartbeat:');
    const telemetry = r.stdout.indexOf('\nTelemetry:\n  Time:            2026-01-01T11:59:56.000Z (4s ago)\n');
    expect(details).toBeGreaterThan(0);
    expect(telemetry).toBeGreaterThan(details);
    expect(r.stdout).toContain('\n1    100     77.1/79.6  87       700/700  1410    12/0         yes/no          3/12             5 (1 down)  sw_power_cap(35%),sw_thermal_slowdown\n');
    expect(r.stdout).toContain('\n/home             nfs01:/export/home  tcp    12.5       250.0');
    expect(r.stdout).toContain('\nmlx5_0/1  InfiniBand  ACTIVE/LinkUp  400 Gb/s  97.12');
    expect(r.stdout).toContain('\neth2       10.00    1.00     12 ');
    expect(r.stdout).not.toContain('History');
    expect(seen.telemetry).toEqual([{ name: 'gpu-01', history: 0 }]);
  });

  it('show --history N adds the compact history', async () => {
    const r = await gantry('node', 'show', 'gpu-01', '--history', '2');
    expect(r.code).toBe(0);
    expect(seen.telemetry).toEqual([{ name: 'gpu-01', history: 2 }]);
    const history = r.stdout.slice(r.stdout.indexOf('History (newest first):')).trimEnd().split('\n');
    expect(history.map((l) => l.split(/\s{2,}/).slice(0, 2))).toEqual([['History (newest first):'], ['TIME', 'SEQ'], ['2026-01-01T11:59:56.000Z', '1234'], ['2026-01-01T11:59:51.000Z', '1233'], ['2026-01-01T11:59:46.000Z', '1232']]);
  });

  it('show: a node without telemetry yet still exits 0 and says so', async () => {
    const r = await gantry('node', 'show', 'gpu-02');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Name:           gpu-02\n');
    expect(r.stdout.endsWith('\nTelemetry: no telemetry reported yet\n')).toBe(true);
  });

  it('show -o json prints {node, telemetry}, telemetry null when none was reported', async () => {
    const r = await gantry('-o', 'json', 'node', 'show', 'gpu-01', '--history', '1');
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { node: { name: string }; telemetry: { latest: { seq: string; gpus: Record<string, unknown>[] }; history: unknown[] } };
    expect(Object.keys(body)).toEqual(['node', 'telemetry']);
    expect(body.node.name).toBe('gpu-01');
    expect(body.telemetry.latest).toEqual((GetNodeTelemetryResponse.toJSON({ latest: sampleTelemetry, history: [] }) as { latest: unknown }).latest);
    expect(body.telemetry.history).toHaveLength(1);
    // Absent optionals stay absent in JSON (the lost GPU has no utilization), zeros stay zeros.
    expect(body.telemetry.latest.gpus[2]).not.toHaveProperty('utilizationGpuPercent');
    expect(body.telemetry.latest.gpus[0]).toMatchObject({ utilizationGpuPercent: 97, clockEventReasonsMask: 0 });
    const none = await gantry('-o', 'json', 'node', 'show', 'gpu-02');
    expect(none.code).toBe(0);
    expect(JSON.parse(none.stdout)).toMatchObject({ node: { name: 'gpu-02' }, telemetry: null });
  });

  it.each([['--history', '361'], ['--history', '-1'], ['--history', 'x']])('show %s %s exits 2 with one line', async (...flag) => {
    const r = await gantry('node', 'show', 'gpu-01', ...flag);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith("gantry: option '--history <n>' argument")).toBe(true);
    expect(oneLine(r.stderr)).toBe(true);
    expect(seen.telemetry).toEqual([]);
  });

  it('events: one line per event, newest first', async () => {
    const r = await gantry('node', 'events', 'gpu-01');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual([
      '2026-01-01T11:59:30.000Z  XID 79 GPU 2 (GPU-2) critical hardware ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS: GPU has fallen off the bus. - action: RESTART_BM',
      '2026-01-01T11:59:29.000Z  STATE READY -> LOST: node gpu-01 lost: no heartbeat for 4s',
      '2026-01-01T11:50:00.000Z  XID 13 GPU ? (00000000:18:00.0) error application GR_EXCEPTION: Graphics SM Warp Exception [pid 4242 python]',
      '2026-01-01T11:00:00.000Z  STATE READY',
      '',
    ]);
    expect(seen.nodeEvents).toEqual([{ name: 'gpu-01', limit: 0 }]);
  });

  it('events --limit N passes the limit; -o json prints the ListNodeEventsResponse', async () => {
    const r = await gantry('-o', 'json', 'node', 'events', 'gpu-01', '--limit', '2');
    expect(r.code).toBe(0);
    expect(seen.nodeEvents).toEqual([{ name: 'gpu-01', limit: 2 }]);
    const body = JSON.parse(r.stdout) as { events: { event?: unknown; xid?: { xid: number; severity: string }; transition?: { toState: string } }[] };
    expect(body.events).toHaveLength(2);
    expect(body.events[0]?.xid).toMatchObject({ xid: 79, severity: 'XID_SEVERITY_CRITICAL' });
    expect(body.events[1]?.transition).toMatchObject({ toState: 'NODE_STATE_LOST' });
  });

  it('events: none is not an error', async () => {
    expect(await gantry('node', 'events', 'gpu-02')).toEqual({ code: 0, stdout: '', stderr: 'no events for node gpu-02\n' });
  });

  it('events: an unknown node exits 1 with one line', async () => {
    expect(await gantry('node', 'events', 'gpu-99')).toEqual({ code: 1, stdout: '', stderr: 'gantry: NOT_FOUND: node gpu-99 not found\n' });
  });

  it.each([['0'], ['1001'], ['ten'], ['-3']])('events --limit %s exits 2 with one line', async (limit) => {
    const r = await gantry('node', 'events', 'gpu-01', '--limit', limit);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(`gantry: option '--limit <n>' argument '${limit}' is invalid.`)).toBe(true);
    expect(oneLine(r.stderr)).toBe(true);
    expect(seen.nodeEvents).toEqual([]);
  });
});

describe('connection failures', () => {
  it('exit 1 with one UNAVAILABLE line', async () => {
    const r = await run(['--addr', '127.0.0.1:1', '--timeout', '2s', 'node', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^gantry: UNAVAILABLE: .*ECONNREFUSED.* \(gateway 127.0.0.1:1\)\n$/);
    expect(oneLine(r.stderr)).toBe(true);
  });
});
