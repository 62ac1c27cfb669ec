// Host telemetry end to end: simulated hosts -> agents -> JetStream -> scheduler -> Redis ->
// gateway -> SDK, including an outage of NATS during which nothing may be lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { get } from 'node:http';
import { GantryClient } from '@gantry/sdk';
import { NodeTelemetryStore } from '@gantry/store';
import { XidSeverity } from '@gantry/proto';
import { REPO_ROOT } from '../../deploy/local/services.js';
import { TestStack, eventually } from '../harness/stack.js';

let stack: TestStack;
let client: GantryClient;

beforeAll(async () => {
  stack = await new TestStack({ agents: 1, env: { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000', METRICS_PORT: '0' } } }).start();
  client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 30 } });
});

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

function inject(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'services/node-agent/src/main.ts', 'sim', 'inject', ...args], {
      cwd: REPO_ROOT, env: { ...process.env, GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'node-0', GANTRY_STATE_DIR: stack.agentStateDir(0) },
    }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)));
  });
}

async function xidsOf(node: string): Promise<number[]> {
  const { events } = await client.listNodeEvents(node, { limit: 100 });
  return events.flatMap((e) => (e.event?.$case === 'xid' ? [e.event.xid.xid] : []));
}

describe('host telemetry', () => {
  it('stores per-interval batches with GPU, NFS and RDMA telemetry, served through the gateway', async () => {
    const t = await eventually('two telemetry batches', async () => {
      const r = await client.getNodeTelemetry('node-0', { history: 5 });
      return r.history.length >= 1 ? r : undefined;
    }, 20_000);
    const latest = t.latest!;
    expect(latest.node).toBe('node-0');
    expect(latest.gpus).toHaveLength(8);
    expect(latest.gpus[0]!.uuid).toMatch(/^GPU-/);
    expect(latest.nfsMounts.map((m) => m.mountpoint).sort()).toEqual(['/home', '/mnt/checkpoints', '/mnt/datasets', '/scratch']);
    expect(latest.rdmaPorts.length).toBeGreaterThanOrEqual(2);
    expect(latest.seq).toBeGreaterThan(t.history[0]!.seq);
  });

  it('reports an injected XID 79 at once, classified, as a node event', async () => {
    await inject('xid', '79', '--gpu', '3');
    const ev = await eventually('xid 79 in node events', async () => {
      const { events } = await client.listNodeEvents('node-0', { limit: 10 });
      return events.find((e) => e.event?.$case === 'xid' && e.event.xid.xid === 79);
    }, 15_000);
    const xid = ev.event?.$case === 'xid' ? ev.event.xid : undefined;
    expect(xid).toMatchObject({ xid: 79, gpuIndex: 3, severity: XidSeverity.XID_SEVERITY_CRITICAL });
    expect(xid!.pciBusId).toBe('00000000:5d:00.0');
  });

  it('exports the host on the agent /metrics', async () => {
    const m = /"metricsPort":(\d+)/.exec(stack.logsOf('agent-node-0'));
    expect(m).not.toBeNull();
    const body = await new Promise<string>((resolve, reject) => get(`http://127.0.0.1:${m![1]}/metrics`, (res) => {
      let b = ''; res.on('data', (d: Buffer) => { b += d; }); res.on('end', () => resolve(b));
    }).on('error', reject));
    expect(body).toMatch(/gantry_gpu_temperature_celsius\{[^}]*gpu="0"/);
    expect(body).toMatch(/gantry_nfs_rpc_backlog_queue_length\{/);
    expect(body).toMatch(/gantry_xid_events_total\{[^}]*xid="79"/);
  });

  it('loses no event and no telemetry while NATS is down, and sends them in order afterwards', async () => {
    const store = new NodeTelemetryStore(stack.redis);
    const before = (await store.get('node-0', 0)).latest!.seq;
    await stack.nats.stop();
    await inject('xid', '48', '--gpu', '1');
    await inject('xid', '63', '--gpu', '2');
    await new Promise((r) => setTimeout(r, 4_000));
    await stack.nats.start();
    await eventually('both XIDs delivered after the outage', async () => {
      const x = await xidsOf('node-0');
      return x.includes(48) && x.includes(63) ? x : undefined;
    }, 30_000);
    const x = await xidsOf('node-0');
    // Newest first: 63 was injected after 48.
    expect(x.indexOf(63)).toBeLessThan(x.indexOf(48));
    const after = await eventually('telemetry caught up', async () => {
      const t = await store.get('node-0', 20);
      return t.latest!.seq >= before + 5 ? t : undefined;
    }, 30_000);
    // Every batch from the outage arrived: the stored sequence numbers have no gap.
    const seqs = [after.latest!, ...after.history].map((b) => b.seq).filter((s) => s >= before).sort((a, b) => a - b);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]! - seqs[i - 1]!).toBe(1);
    expect(after.latest!.droppedReports).toBe(0);
  });
});
