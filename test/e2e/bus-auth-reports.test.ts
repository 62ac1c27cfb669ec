// Agents' reports bound to who sent them (issue 12), through a real stack under the bus
// authorisation: a checkpoint report is taken only from the node running node rank 0 of the
// attempt it names (the checkpoint service learns placements from the job events), and a rank
// event, XID or telemetry batch only from the node's registered agent process, or from the one
// before it for what that one buffered on disk before it was replaced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CheckpointClient, GantryClient } from '@gantry/sdk';
import { CheckpointFormat, CheckpointReport, CheckpointState, JobState, TelemetryBatch, XidEvent, XidSeverity } from '@gantry/proto';
import { agentInboxPrefix, encode, subjects } from '@gantry/bus';
import { natsAuthenticator } from '@gantry/service-kit/connections';
import { NodeStore, NodeTelemetryStore } from '@gantry/store';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { TestStack, eventually } from '../harness/stack.js';
import { waitForJob } from '../harness/fixtures.js';

const FIXTURE = join(REPO_ROOT, 'libs/checkpoint-layouts/test/fixtures/layouts/pytorch_dcp/ckpt');

let stack: TestStack;
let client: GantryClient;
let ck: CheckpointClient;
const open: NatsConnection[] = [];

beforeAll(async () => {
  stack = await new TestStack({ agents: 2, env: { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000', CHECKPOINT_POLL_MS: '250' } } }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 30 } });
  ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
});
afterAll(async () => {
  await Promise.all(open.map((nc) => nc.close()));
  ck?.close();
  client?.close();
  await stack?.stop();
});

/** A connection as `node`'s agent: its own NKEY user, allowed only that node's subjects. */
async function asAgent(node: string): Promise<NatsConnection> {
  const nc = await connect({ servers: stack.nats.url, authenticator: natsAuthenticator(stack.bus.seedFile({ kind: 'agent', node })), inboxPrefix: agentInboxPrefix(node), name: `test as ${node}` });
  open.push(nc);
  return nc;
}

/** A counter of a service's /metrics, by metric name and labels (0 when never counted). */
async function metric(service: string, name: string, labels: Record<string, string>): Promise<number> {
  const port = /"metricsPort":(\d+)/.exec(stack.logsOf(service))?.[1];
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}
const schedulerDropped = (kind: string, reason: string) => metric('scheduler-0', 'gantry_agent_messages_dropped_total', { kind, reason });
const reportsDropped = (reason: string) => metric('checkpoint', 'gantry_checkpoint_reports_dropped_total', { reason });

/** JetStream publish (a request: the stream's ack comes back, so the message is stored). */
async function publishJs(nc: NatsConnection, subject: string, data: Uint8Array): Promise<void> {
  const ack = JSON.parse(new TextDecoder().decode((await nc.request(subject, data, { timeout: 5_000 })).data)) as { stream?: string; error?: unknown };
  expect(ack.error).toBeUndefined();
  expect(ack.stream).toBeTruthy();
}

function inject(node: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'services/node-agent/src/main.ts', 'sim', 'inject', ...args], {
      cwd: REPO_ROOT, env: { ...process.env, GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: stack.nodeName(node), GANTRY_STATE_DIR: stack.agentStateDir(node) },
    }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)));
  });
}

async function xidsOf(node: string): Promise<number[]> {
  const { events } = await client.listNodeEvents(node, { limit: 100 });
  return events.flatMap((e) => (e.event?.$case === 'xid' ? [e.event.xid.xid] : []));
}

const xid = (node: string, n: number, instanceId: string, time = new Date()) => XidEvent.create({
  eventId: `test-${node}-${n}-${time.getTime()}`, node, time, xid: n, gpuIndex: 0, mnemonic: `TEST_${n}`, causeClass: 'hardware', severity: XidSeverity.XID_SEVERITY_CRITICAL, instanceId,
});

describe('checkpoint reports are taken from the node that runs the attempt\'s node rank 0 only', () => {
  it('drops and counts another agent\'s report for a job it does not run; the watching agent\'s report commits', async () => {
    const dir = join(stack.workDir, 'ckpt-owned');
    // The job writes one DCP checkpoint the way DCP does (storage files, then .metadata) and runs on.
    const script = `mkdir -p "$GANTRY_CHECKPOINT_DIR/step-10" && cp ${FIXTURE}/__* "$GANTRY_CHECKPOINT_DIR/step-10/" && cp ${FIXTURE}/.metadata "$GANTRY_CHECKPOINT_DIR/step-10/" && sleep 120`;
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 1, stopGraceSeconds: 1, command: ['sh', '-c', script], checkpoint: { dir, format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, storageTarget: '', retention: undefined } });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING], 45_000);
    const owner = running.attempts.at(-1)!.placement[0]!.node;
    const stranger = owner === stack.nodeName(0) ? stack.nodeName(1) : stack.nodeName(0);
    try {
      const before = { watcher: await reportsDropped('not-watcher'), placed: await reportsDropped('not-placed') };
      // The stranger reports, on its own subject (NATS allows it), a checkpoint of that job, as
      // discovery and as the training code would; the payloads are otherwise valid.
      const nc = await asAgent(stranger);
      const forged = (step: number, source: string) => CheckpointReport.create({
        jobId: job!.id, attempt: 1, node: stranger, dir, path: join(dir, `step-${step}`), name: `step-${step}`, step, format: CheckpointFormat.CHECKPOINT_FORMAT_DCP,
        status: 'COMPLETE', files: [{ path: '.metadata', size: 10, sha256: '' }], totalBytes: 10, seenAt: new Date(), source,
      });
      await publishJs(nc, subjects.checkpointReport(stranger, job!.id), encode(CheckpointReport, forged(999, 'discovery')));
      await publishJs(nc, subjects.checkpointReport(stranger, job!.id), encode(CheckpointReport, forged(998, 'explicit')));
      await eventually('both forged reports dropped and counted', async () =>
        (await reportsDropped('not-watcher')) > before.watcher && (await reportsDropped('not-placed')) > before.placed, 15_000);
      // The owner's agent discovers step-10 and its report commits.
      const committed = await eventually('step-10 committed', async () => (await ck.listCheckpoints(job!.id)).find((c) => c.step === 10 && c.state === CheckpointState.CHECKPOINT_STATE_COMMITTED), 30_000);
      expect(committed).toMatchObject({ node: owner, source: 'discovery', attempt: 1 });
      expect((await ck.listCheckpoints(job!.id)).map((c) => c.step)).toEqual([10]);
      expect(stack.logsOf('checkpoint')).toMatch(/"reason":"not-watcher".*"dropping a checkpoint report its sender may not make"/);
    } finally {
      await client.cancelJob(job!.id, 'test over');
    }
  });
});

describe('rank events, XIDs and telemetry are taken from the registered agent process', () => {
  it('drops and counts an XID and a telemetry batch from another instance than the registered one', async () => {
    const node = stack.nodeName(1);
    const nc = await asAgent(node);
    const before = { xid: await schedulerDropped('host-event', 'instance-mismatch'), telemetry: await schedulerDropped('telemetry', 'instance-mismatch') };
    await publishJs(nc, subjects.hostEvent(node), encode(XidEvent, xid(node, 94, 'not-the-agent')));
    await publishJs(nc, subjects.telemetry(node), encode(TelemetryBatch, TelemetryBatch.create({ node, time: new Date(), seq: 999_999, instanceId: '' })));
    await eventually('both dropped and counted', async () =>
      (await schedulerDropped('host-event', 'instance-mismatch')) > before.xid && (await schedulerDropped('telemetry', 'instance-mismatch')) > before.telemetry, 15_000);
    expect(await xidsOf(node)).not.toContain(94);
    expect((await new NodeTelemetryStore(stack.redis).get(node, 50)).latest?.seq).not.toBe(999_999);
  });

  it('takes what the previous agent process buffered while NATS was down and its successor sends, and nothing that process sends afterwards', async () => {
    const node = stack.nodeName(0);
    const nodes = new NodeStore(stack.redis);
    const old = (await nodes.instances(node))!.current;
    const reports = join(stack.agentStateDir(0), 'reports');
    await stack.nats.stop();
    try {
      await inject(0, 'xid', '48', '--gpu', '1');
      // Buffered on disk by the running agent, stamped with its instance id.
      await eventually('the XID buffered', () => readdirSync(reports).some((f) => f.endsWith('-event.rpt')), 15_000);
      await stack.agents[0]!.stop();
    } finally {
      await stack.nats.start();
    }
    const before = { mismatch: await schedulerDropped('host-event', 'instance-mismatch'), stale: await schedulerDropped('host-event', 'stale-instance') };
    await stack.agents[0]!.start();
    // start() returns once the node looks READY, which the old process's last heartbeat can
    // still say: wait for the new process's registration.
    const now = await eventually('the new agent process registered', async () => {
      const i = await nodes.instances(node);
      return i && i.current !== old ? i : undefined;
    }, 30_000);
    expect(now).toMatchObject({ previous: old });
    expect(now!.current).not.toBe(old);
    // The new process sends the old one's XID, with the old instance id: believed.
    await eventually('the buffered XID stored', async () => (await xidsOf(node)).includes(48), 30_000);
    expect(await schedulerDropped('host-event', 'instance-mismatch')).toBe(before.mismatch);
    expect(await schedulerDropped('host-event', 'stale-instance')).toBe(before.stale);
    // The old process, were it still running, stamping after its successor started: dropped.
    const nc = await asAgent(node);
    await publishJs(nc, subjects.hostEvent(node), encode(XidEvent, xid(node, 63, old)));
    await eventually('the stale XID dropped and counted', async () => (await schedulerDropped('host-event', 'stale-instance')) > before.stale, 15_000);
    expect(await xidsOf(node)).not.toContain(63);
    expect(stack.logsOf('scheduler-0')).toMatch(/"kind":"host-event","reason":"stale-instance"/);
  });
});
