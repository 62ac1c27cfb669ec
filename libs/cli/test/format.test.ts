import { describe, expect, it } from 'vitest';
import { FailureClass, Job, JobEvent, JobState, Launcher, LogStream, RecoveryGrade, StreamLogsResponse } from '@gantry/proto';
import { attemptsTable, eventLine, formatAge, jobDetail, jobTable, logLine, nodeDetail, nodeTable, shellQuote, stateLine } from '../src/format.js';
import { NOW, ago, sampleJob, sampleNode } from './fixtures.js';

describe('formatAge', () => {
  it.each([
    [5, '5s'],
    [119, '119s'],
    [300, '5m'],
    [7_300, '2h'],
    [200_000, '2d'],
  ])('%is -> %s', (s, text) => expect(formatAge(ago(s), NOW)).toBe(text));

  it('shows - for no time and 0s for the future', () => {
    expect(formatAge(undefined, NOW)).toBe('-');
    expect(formatAge(ago(-10), NOW)).toBe('0s');
  });
});

describe('tables', () => {
  it('lists jobs', () => {
    const pending = Job.fromPartial({ id: 'j-43', state: JobState.JOB_STATE_PENDING, createdAt: ago(5) });
    expect(jobTable([sampleJob, pending], NOW)).toBe(
      [
        'ID    NAME   TENANT  STATE    NODESxGPUS  ATTEMPT  AGE',
        'j-42  llama  ml      FAILED   2x8         1        5m',
        'j-43                 PENDING  -           0        5s',
        '',
      ].join('\n'),
    );
  });

  it('lists nodes with free/total GPUs, model, topology and heartbeat age', () => {
    expect(nodeTable([sampleNode], NOW)).toBe(
      [
        'NAME    STATE  GPUS FREE/TOTAL  MODEL  NVLINK/SWITCH/SPINE   HEALTH  HEARTBEAT',
        'gpu-01  READY  3/4              H100   nvl-1/leaf-2/spine-1  0       3s',
        '',
      ].join('\n'),
    );
  });
});

describe('detail views', () => {
  it('shows a job with each rank placement and the failure', () => {
    const text = jobDetail(sampleJob, NOW);
    expect(text).toContain('State:      FAILED\n');
    expect(text).toContain('Reason:     rank 1 exited with code 3\n');
    expect(text).toContain('Resources:  2 nodes x 8 GPUs (H100)\n');
    expect(text).toContain('Topology:   same-switch\n');
    expect(text).toContain('Created:    2026-01-01T11:55:00.000Z (5m ago)\n');
    expect(text).toContain('Attempt 1:\n');
    expect(text).toContain('  Resumed from: ckpt-7\n');
    expect(text).toContain('  Failure:      node-rank 1 on gpu-02: exit code 3: process exited\n');
    expect(text).toContain('  NODE-RANK  NODE    GPUS             PHASE   PID  EXIT     ERROR\n');
    expect(text).toContain('  0          gpu-01  0,1,2,3,4,5,6,7  EXITED  100  SIGTERM  -\n');
    expect(text).toContain('  1          gpu-02  0,1,2,3,4,5,6,7  EXITED  200  3        -\n');
    expect(text).toContain('Launcher:   per-node (one process per node with 8 GPUs)\n');
    expect(text).toContain("Workdir:    (each rank's own folder on its node)\n");
    expect(text).toContain(`Run as:     (the user each node maps tenant ${sampleJob.spec!.tenant || 'default'} to)\n`);
  });

  it('shows the user the job asked its ranks to run as', () => {
    const text = jobDetail(Job.fromPartial({ ...sampleJob, spec: { ...sampleJob.spec, runAsUser: '1001:1001' } }), NOW);
    expect(text).toContain('Run as:     1001:1001\n');
  });

  it('shows the command with its quoting, the working directory, the launcher and the rendezvous', () => {
    const job = Job.fromPartial({
      ...sampleJob,
      spec: { ...sampleJob.spec, gpusPerNode: 0, launcher: Launcher.LAUNCHER_PER_GPU, workingDir: '/home/me/llama', command: ['python', '-c', "print('hi there')", '', '--lr=3e-4', 'a b'] },
      attempts: [{ ...sampleJob.attempts[0], masterPort: 29501 }],
    });
    const text = jobDetail(job, NOW);
    expect(text).toContain(`Command:    python -c 'print('\\''hi there'\\'')' '' --lr=3e-4 'a b'\n`);
    expect(text).toContain('Workdir:    /home/me/llama\n');
    expect(text).toContain('Resources:  2 nodes x all GPUs (H100)\n');
    expect(text).toContain('Launcher:   per-gpu (one process per GPU, every GPU per node)\n');
    expect(text).toContain('  Rendezvous:   10.0.0.1:29501 (MASTER_ADDR:MASTER_PORT)\n');
    expect(shellQuote(['sh', '-c', 'echo "$X"; exit 3'])).toBe(`sh -c 'echo "$X"; exit 3'`);
  });

  it('does not repeat in the failure line what the reason already says', () => {
    const failed = (failure: object) => jobDetail(Job.fromPartial({ ...sampleJob, attempts: [{ ...sampleJob.attempts[0], failure }] }), NOW);
    expect(failed({ reason: 'rank 1 on gpu-02 exited with code 3: ValueError: x', rank: 1, exitCode: 3, node: 'gpu-02', failureClass: FailureClass.FAILURE_CLASS_APPLICATION }))
      .toContain('  Failure:      [application] rank 1 on gpu-02 exited with code 3: ValueError: x\n');
    expect(failed({ reason: 'rank 0 on gpu-01 was killed by SIGKILL', rank: 0, signal: 'SIGKILL', node: 'gpu-01' }))
      .toContain('  Failure:      rank 0 on gpu-01 was killed by SIGKILL\n');
  });

  it('shows a job without spec or attempts', () => {
    const text = jobDetail(Job.fromPartial({ id: 'j-1', state: JobState.JOB_STATE_PENDING }), NOW);
    expect(text).toContain('Resources:  -\n');
    expect(text).not.toContain('Attempt 1');
  });

  it('shows a node with its GPUs and allocations', () => {
    const text = nodeDetail(sampleNode, NOW);
    expect(text).toContain('GPUs free:      3/4\n');
    expect(text).toContain('Labels:         zone=a\n');
    expect(text).toContain('Rack:           r3\n');
    expect(text).toMatch(/1 +H100 +81559 MiB +0000:11:00.0 +GPU-1 +j-42 \(attempt 1, node-rank 0\)/);
  });
});

describe('stream lines', () => {
  it('formats an event, with the transition when there is one', () => {
    const base = { eventId: 'e1', jobId: 'j-1', attempt: 1, time: NOW };
    expect(eventLine(JobEvent.fromPartial({ ...base, toState: JobState.JOB_STATE_PENDING }))).toBe('2026-01-01T12:00:00.000Z  j-1  PENDING  attempt 1');
    expect(eventLine(JobEvent.fromPartial({ ...base, fromState: JobState.JOB_STATE_RUNNING, toState: JobState.JOB_STATE_FAILED, reason: 'xid 79' }))).toBe(
      '2026-01-01T12:00:00.000Z  j-1  RUNNING -> FAILED  attempt 1  xid 79',
    );
  });

  it('prefixes log lines with the node rank (and per GPU the local rank) and routes stderr', () => {
    const out = StreamLogsResponse.fromPartial({ rank: 3, line: { text: 'step 10\n', stream: LogStream.LOG_STREAM_STDOUT } });
    const err = StreamLogsResponse.fromPartial({ rank: 0, line: { text: 'warning', stream: LogStream.LOG_STREAM_STDERR } });
    const gpu = StreamLogsResponse.fromPartial({ rank: 1, line: { text: 'loss 0.5', stream: LogStream.LOG_STREAM_STDOUT, localRank: 7 } });
    expect(logLine(out)).toEqual({ text: '[node-rank 3] step 10', stderr: false });
    expect(logLine(err)).toEqual({ text: '[node-rank 0] warning', stderr: true });
    expect(logLine(gpu)).toEqual({ text: '[node-rank 1 local-rank 7] loss 0.5', stderr: false });
  });
});

describe('recovery views', () => {
  const chain = Job.fromPartial({
    id: 'j-7', state: JobState.JOB_STATE_RECOVERING, attempt: 2, recoveries: 1, maxRecoveries: 4, excludedNodes: ['sim-node-2'],
    recovery: { decided: true, retry: true, grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES, notBefore: new Date(NOW.getTime() + 4_000) },
    attempts: [
      {
        number: 1, placement: [{ rank: 0, node: 'sim-node-1' }, { rank: 1, node: 'sim-node-2' }], startedAt: ago(60), finishedAt: ago(30), nextTryAt: ago(28),
        failure: { reason: 'node fault: XID 79 on GPU 3 of sim-node-2', rank: 1, node: 'sim-node-2', failureClass: FailureClass.FAILURE_CLASS_NODE_FAULT, evidence: 'XID 79 on GPU 3 of sim-node-2 at 11:59:30' },
      },
      {
        number: 2, placement: [{ rank: 0, node: 'sim-node-1' }, { rank: 1, node: 'sim-node-3' }], grade: RecoveryGrade.RECOVERY_GRADE_REPLACE_NODES, startedAt: ago(20),
        resumedFromCheckpoint: '/ckpt/step-20',
      },
    ],
  });

  it('shows the recovery in the state line', () => {
    expect(stateLine(chain, NOW)).toBe('RECOVERING (attempt 3 of 5, replace-nodes, next try in 4s, excluding sim-node-2)');
    expect(jobDetail(chain, NOW)).toContain('State:      RECOVERING (attempt 3 of 5, replace-nodes, next try in 4s, excluding sim-node-2)\n');
    expect(stateLine(Job.fromPartial({ state: JobState.JOB_STATE_RUNNING }), NOW)).toBe('RUNNING');
  });

  it('lists the chain of attempts', () => {
    const text = attemptsTable(chain, NOW);
    expect(text).toContain('ATTEMPT  NODES                  GRADE          STARTED');
    expect(text).toMatch(/^1 +sim-node-1,sim-node-2 +first .* node-fault +node-rank 1 on sim-node-2 +XID 79 on GPU 3 of sim-node-2 at 11:59:30 +- +2026-01-01T11:59:32.000Z \(28s ago\)$/m);
    expect(text).toMatch(/^2 +sim-node-1,sim-node-3 +replace-nodes .* running +- +- +\/ckpt\/step-20 +-$/m);
    expect(text).toContain('recoveries used 1 of 4');
  });

  it('says how many older attempts were compacted from the record, in status and in the chain', () => {
    const compacted = Job.fromPartial({ ...chain, attempt: 6, attemptsCompacted: 4, attempts: chain.attempts.map((a) => ({ ...a, number: a.number + 4 })) });
    expect(jobDetail(compacted, NOW)).toContain(`Attempt:    6 (4 older attempts (1-4) compacted from the record; \`gantry job watch ${chain.id}\` replays their events)\n`);
    expect(attemptsTable(compacted, NOW)).toMatch(/^6 +sim-node-1,sim-node-3 .*\n4 older attempts \(1-4\) compacted from the record;/m);
    expect(jobDetail(chain, NOW)).not.toContain('compacted');
  });
});
