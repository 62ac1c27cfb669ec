// `gantry report` through the real services: a job, an injected XID 79, its recovery, and
// the operations report the scheduler computes from its own records (and the checkpoint
// service's), read with the CLI through the gateway as JSON, tables and an HTML page.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CheckpointClient } from '@gantry/sdk';
import { JobState, OperationsReport, jobStateName } from '@gantry/proto';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { gantry, sim } from '../harness/tools.js';
import { FAST_RECOVERY } from '../harness/fast-config.js';

const setup = stackPerTest();
const TARGETS = JSON.stringify([{ name: 'checkpoints', mountPrefix: '/mnt/checkpoints', serverExport: '10.0.0.11:/checkpoints', writeBytesPerSecond: 250e9, readBytesPerSecond: 700e9 }]);

describe('gantry report', () => {
  it('shows an injected XID 79, the blamed node and the recovered chain, and a committed checkpoint against its target', async () => {
    // Telemetry every second: the NFS figures need two batches of a node (rates are per interval),
    // which at the default 10 s a fast run can finish before.
    const { stack, client } = await setup({ agents: 3, env: { checkpoint: { STORAGE_TARGETS: TARGETS }, 'node-agent': { TELEMETRY_INTERVAL_MS: '1000' } } });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY, spares: { pools: [{ count: 1 }] } });
    const { job } = await client.submitJob({ nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 1; fi'] });
    const id = job!.id;
    const running = await waitForJob(client, id, [JobState.JOB_STATE_RUNNING]);
    const ck = new CheckpointClient({ address: stack.checkpointAddr, timeoutMs: 5_000, tls: stack.internalClientTls });
    try {
      const c = await ck.beginCheckpoint({ jobId: id, attempt: 1, step: 20, path: `/mnt/checkpoints/${id}/step-20`, shardCount: 1 });
      await ck.reportShard(c.id, 0, 4_000_000_000);
      await ck.commitCheckpoint(c.id);
    } finally {
      ck.close();
    }
    const faulty = running.attempts[0]!.placement.find((p) => p.rank === 1)!.node;
    await sim(stack, faulty, 'inject', 'xid', '79', '--gpu', '3');
    const done = await waitForJob(client, id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.excludedNodes).toEqual([faulty]);

    const json = await gantry(stack, 'report', '--since', '1h', '-o', 'json');
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const r = OperationsReport.fromJSON(JSON.parse(json.stdout));
    expect(r.nodes).toBe(3);
    expect(r.jobs).toBe(1);
    expect(r.xidFailures.map((x) => [x.xid, x.events, x.nodes, x.component])).toEqual([[79, 1, 1, 'hardware']]);
    expect(r.attemptFailures.map((a) => a.attempts)).toEqual([1]);
    // The blame, and the quarantine the XID's hold made: both on the faulty node.
    expect(r.exclusions!.blames).toBe(1);
    expect(r.exclusions!.topNodes[0]).toMatchObject({ node: faulty });
    expect(r.exclusions!.nodes).toBe(1);
    expect(r.exclusions!.top3Share).toBe(1);
    expect(r.detection!.faultXids).toBe(1);
    expect(r.retryChains).toMatchObject({ chains: 1, attempts: 2, succeeded: 1, failed: 0, open: 0, successShare: 1, retries: 1 });
    expect(r.retryChains!.retryIntervalMedianSeconds).toBeGreaterThan(0);
    expect(r.checkpoints).toMatchObject({ checkpoints: 1, bytes: 4_000_000_000 });
    expect(r.checkpoints!.targets[0]).toMatchObject({ target: 'checkpoints', checkpoints: 1, capacityBytesPerSecond: 250e9 });
    expect(r.checkpoints!.targets[0]!.linkBytesPerSecond).toBeGreaterThan(0);
    // The simulated agents' NFS mounts report WRITE latency with queueing.
    expect(r.nfs!.samples).toBeGreaterThan(0);
    expect(r.nfs!.queueShare).toBeGreaterThan(0);
    expect(r.nfs!.queueShare).toBeLessThanOrEqual(1);

    const html = `${stack.workDir}/report.html`;
    const tables = await gantry(stack, 'report', '--since', '1h', '--html', html);
    expect(tables.code).toBe(0);
    expect(tables.stdout).toMatch(/^ {2}79 +\S+ +hardware +node-fault +1 +1$/m);
    expect(tables.stdout).toContain(`top 3 nodes:`);
    expect(tables.stdout).toContain('1 over 2 attempts: 1 succeeded, 0 failed, 0 open');
    expect(existsSync(html)).toBe(true);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('new Chart(');
    expect(page).toContain(faulty);

    // Bad input: one readable line, exit 2 from the CLI; INVALID_ARGUMENT from the gateway.
    const bad = await gantry(stack, 'report', '--since', '365d');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since must be from 1m to 90d');
    await expect(client.getOperationsReport(10)).rejects.toThrow(/INVALID_ARGUMENT: since_seconds must be 60\.\.7776000/);
  });
});
