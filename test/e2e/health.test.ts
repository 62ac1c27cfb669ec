// Node health through the real services: the detector in the scheduler reads the agents'
// telemetry, moves a node READY -> SUSPECT -> QUARANTINED from a precursor pattern, hands the
// job on it to recovery, and explains why; operators cordon, drain, quarantine and release
// nodes, and change the XID policy without a release.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FailureClass, JobState, NodeOperation, NodeState, jobStateName, nodeStateName, type NodeEvent } from '@gantry/proto';
import type { GantryClient } from '@gantry/sdk';
import { eventually } from '../harness/stack.js';
import { stackPerTest, waitForJob } from '../harness/fixtures.js';
import { gantry, sim } from '../harness/tools.js';
import { FAST_HEALTH, FAST_RECOVERY } from '../harness/fast-config.js';

const setup = stackPerTest();

const agents = { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000' } };

async function nodeState(client: GantryClient, name: string, want: NodeState, timeoutMs = 30_000): Promise<void> {
  await eventually(`${name} ${nodeStateName(want)}`, async () => ((await client.getNode(name)).state === want ? true : undefined), timeoutMs);
}

const transitions = (history: NodeEvent[]) => history.map((e) => `${nodeStateName(e.fromState)}->${nodeStateName(e.toState)}`).reverse();

describe('node health', () => {
  it('an ECC storm on a job GPU: SUSPECT, then QUARANTINED; the job recovers elsewhere; node explain says why', async () => {
    const { stack, client } = await setup({ agents: 3, env: agents });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    await client.setHealthConfig(FAST_HEALTH);
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; else sleep 1; fi'] });
    const running = await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    const faulty = running.attempts[0]!.placement[0]!.node;
    // Baselines learn a few quiet windows first.
    await eventually('baselines', async () => ((await client.getClusterHealth()).nodesEvaluated === 3 ? true : undefined), 20_000);
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await client.getNode(faulty)).state).toBe(NodeState.NODE_STATE_READY);

    await sim(stack, faulty, 'inject', 'ecc-storm', '--gpu', '2', '--duration', '600', '--param', 'sbeRate=50', '--param', 'remapFailure=false');
    await nodeState(client, faulty, NodeState.NODE_STATE_QUARANTINED);

    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 40_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempts[0]!.failure).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node: faulty });
    expect(done.attempts[0]!.failure!.reason).toContain('quarantined by the health detector');
    expect(done.excludedNodes).toEqual([faulty]);
    expect(done.attempts[1]!.placement[0]!.node).not.toBe(faulty);

    const why = await client.explainNode(faulty);
    expect(transitions(why.history)).toEqual(['UNSPECIFIED->READY', 'READY->SUSPECT', 'SUSPECT->QUARANTINED']);
    expect(why.history[0]!.reason).toMatch(/^ScoreAboveQuarantine: score [\d.]+ \(quarantine at 12\): gpu\.ecc_sbe_rate=/);
    expect(why.health!.signals[0]).toMatchObject({ signal: 'gpu.ecc_sbe_rate', gpu: 2 });
    expect(why.health!.signals[0]!.value).toBeGreaterThan(why.health!.signals[0]!.baseline ?? 0);
    expect(why.node!.conditions.find((c) => c.type === 'Healthy')).toMatchObject({ status: false, reason: 'ScoreAboveQuarantine' });

    const cli = await gantry(stack, 'node', 'explain', faulty);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^State: +QUARANTINED$/m);
    expect(cli.stdout).toMatch(/^ {2}gpu\.ecc_sbe_rate \(GPU 2\) +[\d.]+ /m);
    expect(cli.stdout).toMatch(/SUSPECT -> QUARANTINED +ScoreAboveQuarantine/);
    const list = await gantry(stack, 'node', 'list');
    expect(list.stdout).toMatch(new RegExp(`^${faulty} +QUARANTINED `, 'm'));
    const health = await gantry(stack, 'health');
    expect(health.stdout).toMatch(new RegExp(`^ {2}${faulty} +QUARANTINED +[\\d.]+ `, 'm'));
    // The other nodes stayed in service.
    for (const n of ['node-0', 'node-1', 'node-2'].filter((x) => x !== faulty)) expect((await client.getNode(n)).state).toBe(NodeState.NODE_STATE_READY);
  });

  it('a GPU that leaves the inventory holds its node QUARANTINED until an operator releases it', async () => {
    const { stack, client } = await setup({ agents: 2, env: { 'node-agent': { TELEMETRY_INTERVAL_MS: '1000', INVENTORY_INTERVAL_MS: '1000' } } });
    await client.setHealthConfig(FAST_HEALTH);
    await eventually('evaluated', async () => ((await client.getClusterHealth()).nodesEvaluated === 2 ? true : undefined), 20_000);
    await sim(stack, 'node-1', 'inject', 'gpu-lost', '--gpu', '3');
    await nodeState(client, 'node-1', NodeState.NODE_STATE_QUARANTINED);
    const why = await client.explainNode('node-1');
    expect(why.node!.conditions.find((c) => c.type === 'Held')).toMatchObject({ status: true, reason: 'QuarantineNow' });
    expect(why.health!.holdReason).toMatch(/^GPU \S+ \(index 3\) is missing from the inventory$/);
    // The score alone would not hold it: only a release does.
    await client.operateNode('node-1', NodeOperation.NODE_OPERATION_RELEASE, { reason: 'GPU reseated' });
    expect((await client.getNode('node-1')).state).toBe(NodeState.NODE_STATE_READY);
  });

  it('operators cordon, drain, quarantine and release nodes; every decision is a node event with its reason', async () => {
    const { stack, client } = await setup({ agents: 2 });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    // Cordon: running work continues, nothing new lands there.
    expect((await gantry(stack, 'node', 'cordon', 'node-0', '--reason', 'fan noise')).stdout).toBe('node node-0: READY,cordoned (cordoned: fan noise)\n');
    const { job: one } = await client.submitJob({ nodes: 1, gpusPerNode: 8, command: ['sleep', '3'] });
    const r1 = await waitForJob(client, one!.id, [JobState.JOB_STATE_RUNNING]);
    expect(r1.attempts[0]!.placement[0]!.node).toBe('node-1');
    const { job: two } = await client.submitJob({ nodes: 1, gpusPerNode: 8, command: ['true'] });
    await eventually('explained', async () => ((await client.explainJob(two!.id)).rejections.some((r) => r.reason === 'cordoned') ? true : undefined));

    // Drain with a running job: DRAINING until it ends, then DRAINED.
    await client.operateNode('node-0', NodeOperation.NODE_OPERATION_UNCORDON, { reason: 'fan replaced' });
    await waitForJob(client, two!.id, [JobState.JOB_STATE_SUCCEEDED]);
    const drained = await client.operateNode('node-1', NodeOperation.NODE_OPERATION_DRAIN, { reason: 'kernel update' });
    expect(drained.state).toBe(NodeState.NODE_STATE_DRAINING);
    await waitForJob(client, one!.id, [JobState.JOB_STATE_SUCCEEDED]);
    await nodeState(client, 'node-1', NodeState.NODE_STATE_DRAINED, 10_000);
    await client.operateNode('node-1', NodeOperation.NODE_OPERATION_UNCORDON, { reason: 'updated' });

    // Drain with a deadline: a job still running then moves, without using its recovery budget.
    const { job: long } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; fi'] });
    const lr = await waitForJob(client, long!.id, [JobState.JOB_STATE_RUNNING]);
    const host = lr.attempts[0]!.placement[0]!.node;
    const cli = await gantry(stack, 'node', 'drain', host, '--reason', 'rack move', '--move-after', '1s');
    expect(cli.code).toBe(0);
    const moved = await waitForJob(client, long!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 30_000);
    expect(jobStateName(moved.state)).toBe('SUCCEEDED');
    expect(moved.attempts[1]!.placement[0]!.node).not.toBe(host);
    expect(moved.recoveries).toBe(0);
    await nodeState(client, host, NodeState.NODE_STATE_DRAINED, 10_000);
    await client.operateNode(host, NodeOperation.NODE_OPERATION_UNCORDON, { reason: 'moved' });

    // Quarantine with a running job: the job is handed to recovery as a node fault.
    const { job: q } = await client.submitJob({ nodes: 1, gpusPerNode: 8, stopGraceSeconds: 1, command: ['sh', '-c', 'if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 300; fi'] });
    const qr = await waitForJob(client, q!.id, [JobState.JOB_STATE_RUNNING]);
    const bad = qr.attempts[0]!.placement[0]!.node;
    expect((await gantry(stack, 'node', 'quarantine', bad, '--reason', 'ECC storm seen by hand')).code).toBe(0);
    const recovered = await waitForJob(client, q!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 30_000);
    expect(jobStateName(recovered.state)).toBe('SUCCEEDED');
    expect(recovered.attempts[0]!.failure).toMatchObject({ failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, node: bad });
    // Uncordon does not end a quarantine; release does, once.
    const refused = await gantry(stack, 'node', 'uncordon', bad, '--reason', 'x');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`gantry: FAILED_PRECONDITION: node ${bad} is quarantined: release it instead\n`);
    expect((await gantry(stack, 'node', 'release', bad, '--reason', 'DIMM reseated')).stdout).toBe(`node ${bad}: READY (released by operator: DIMM reseated)\n`);
    const again = await gantry(stack, 'node', 'release', bad, '--reason', 'x');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('not quarantined or suspect: nothing to release');
    expect((await gantry(stack, 'node', 'cordon', 'node-9', '--reason', 'x')).stderr).toBe('gantry: NOT_FOUND: node node-9 not found\n');
    expect((await gantry(stack, 'node', 'cordon', 'node-0')).code).toBe(2);

    const events = await gantry(stack, 'node', 'events', bad);
    expect(events.stdout).toContain('QUARANTINED -> READY');
    expect(events.stdout).toContain('released by operator: DIMM reseated');
    expect(events.stdout).toContain('quarantined by operator: ECC storm seen by hand');
  });

  it('a job whose ranks all report NCCL watchdog timeouts and then fall silent is a hang: recovery restarts it', async () => {
    const { client } = await setup({ agents: 2, env: agents });
    await client.setSchedulingConfig({ recovery: FAST_RECOVERY });
    await client.setHealthConfig({ ...FAST_HEALTH, hang: { silentSec: 3 } });
    const watchdog = '[E ProcessGroupNCCL.cpp:1535] [Rank $NODE_RANK] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=4, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600020 milliseconds before timing out.';
    const { job } = await client.submitJob({
      nodes: 2, gpusPerNode: 8, stopGraceSeconds: 1,
      command: ['sh', '-c', `if [ "$GANTRY_ATTEMPT" = 1 ]; then sleep 1; echo "${watchdog}" >&2; sleep 300; fi`],
    });
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED], 60_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    expect(done.attempts[0]!.failure!.failureClass).toBe(FailureClass.FAILURE_CLASS_HANG);
    expect(done.attempts[0]!.failure!.reason).toMatch(/^hang: no log output for \d+s; .*NCCL watchdog\/timeout lines from [12] of 2 nodes/);
    const health = await client.getClusterHealth();
    expect(health.findings[0]).toMatchObject({ kind: 'hang', jobId: job!.id });
  });

  it('the XID policy is data: an operator override applies at once, and a bad config is refused naming every problem', async () => {
    const { stack, client } = await setup({ agents: 1 });
    const file = join(stack.workDir, 'health.yaml');
    writeFileSync(file, 'windowSec: fast\nxid:\n  policy:\n    48: {action: explode}\n');
    const bad = await gantry(stack, 'admin', 'health-config', 'set', '-f', file);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^gantry: .*windowSec.*xid\.policy\.48\.action.*\n$/);
    const stored = await client.setHealthConfig({ xid: { policy: { 48: { action: 'warn' } } } });
    expect((stored.config as { xid: { policy: Record<string, { action: string }> } }).xid.policy['48']!.action).toBe('warn');
    const { job } = await client.submitJob({ nodes: 1, gpusPerNode: 8, command: ['sleep', '4'] });
    await waitForJob(client, job!.id, [JobState.JOB_STATE_RUNNING]);
    await sim(stack, 'node-0', 'inject', 'xid', '48', '--gpu', '1');
    await eventually('XID stored', async () => ((await client.listNodeEvents('node-0')).events.some((e) => e.event?.$case === 'xid') ? true : undefined));
    // A DBE only warns now: the job is not stopped and finishes.
    const done = await waitForJob(client, job!.id, [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_RECOVERING], 30_000);
    expect(jobStateName(done.state)).toBe('SUCCEEDED');
    const get = await gantry(stack, 'admin', 'health-config', 'get');
    expect(JSON.parse(get.stdout).xid.policy['48'].action).toBe('warn');
  });
});
