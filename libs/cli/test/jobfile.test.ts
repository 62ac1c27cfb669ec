import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FailureClass, Launcher, TopologyRequirement } from '@gantry/proto';
import { submissionFromFlags } from '../src/commands/job.js';
import { UsageError } from '../src/errors.js';
import { finalizeSubmission, loadJobFile, mergeSubmissions, parseJobFile } from '../src/jobfile.js';

const FULL = `
name: llama-pretrain
tenant: ml-research
nodes: 4
gpusPerNode: 8
gpuTypes: [H100, A100]
priority: high
timeLimit: 2h
topology: same-switch
env:
  NCCL_DEBUG: INFO
  OMP_NUM_THREADS: 8
workdir: /home/me/llama
runAs: alice
selector:
  zone: a
excludeNodes: [gpu-17]
idempotencyKey: llama-run-1
masterPort: 29600
stopGrace: 30s
command: [torchrun, train.py, --config, cfg.yaml]
`;

describe('parseJobFile', () => {
  it('reads every field into proto names and types', () => {
    expect(parseJobFile(FULL, 'job.yaml')).toEqual({
      idempotencyKey: 'llama-run-1',
      spec: {
        name: 'llama-pretrain',
        tenant: 'ml-research',
        nodes: 4,
        gpusPerNode: 8,
        gpuTypes: ['H100', 'A100'],
        priorityClass: 'high',
        timeLimitSeconds: 7200,
        topology: TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SWITCH,
        env: { NCCL_DEBUG: 'INFO', OMP_NUM_THREADS: '8' },
        workingDir: '/home/me/llama',
        runAsUser: 'alice',
        nodeSelector: { zone: 'a' },
        excludeNodes: ['gpu-17'],
        masterPort: 29600,
        stopGraceSeconds: 30,
        command: ['torchrun', 'train.py', '--config', 'cfg.yaml'],
      },
    });
  });

  it('accepts a single string for lists, a number of seconds for durations, and an empty file', () => {
    expect(parseJobFile('gpuTypes: H100\ntimeLimit: 90', 'f').spec).toEqual({ gpuTypes: ['H100'], timeLimitSeconds: 90 });
    expect(parseJobFile('', 'f')).toEqual({ spec: {} });
    // A bare uid reads as a YAML number.
    expect(parseJobFile('runAs: 1001', 'f').spec).toEqual({ runAsUser: '1001' });
  });

  it.each([
    ['nodes: [1', /^job\.yaml: invalid YAML: .*line 1/],
    ['- a\n- b', 'job.yaml: a job file must be a YAML mapping'],
    ['gpus: 8', 'job.yaml: unknown field "gpus" (known: name, tenant, nodes'],
    ['nodes: 0', 'job.yaml: nodes: "0" is not an integer in 1..4294967295'],
    ['nodes: two', 'job.yaml: nodes: "two" is not an integer'],
    ['timeLimit: soon', 'job.yaml: timeLimit: invalid duration "soon"'],
    ['topology: rack', 'job.yaml: topology: unknown topology "rack"'],
    ['env: [A=1]', 'job.yaml: env must be a mapping of names to strings'],
    ['env: {A: {b: 1}}', 'job.yaml: env.A must be a string'],
    ['command: python train.py', 'job.yaml: command must be a list of strings'],
    ['name: 5', 'job.yaml: name must be a string'],
    ['masterPort: 70000', 'job.yaml: masterPort: "70000" is not an integer in 1..65535'],
    ['name: a\nname: b', /^job\.yaml: invalid YAML: Map keys must be unique/],
  ])('rejects %j with one line', (yaml, message) => {
    let err: unknown;
    try {
      parseJobFile(yaml, 'job.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    if (typeof message === 'string') expect(msg.startsWith(message)).toBe(true);
    else expect(msg).toMatch(message);
  });

  it('loads from disk and names an unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-cli-'));
    const path = join(dir, 'job.yaml');
    writeFileSync(path, 'name: x\ncommand: [a]\n');
    expect(loadJobFile(path).spec).toEqual({ name: 'x', command: ['a'] });
    expect(() => loadJobFile(join(dir, 'nope.yaml'))).toThrow(/^cannot read job file: ENOENT/);
  });
});

describe('merging flags over a file', () => {
  const file = parseJobFile(FULL, 'job.yaml');

  it('lets given flags win, merges env and selector by key, and keeps the rest', () => {
    const flags = submissionFromFlags(
      { nodes: 2, env: [['NCCL_DEBUG', 'WARN'], ['EXTRA', '1']], selector: [['rack', 'r1']], gpuType: ['B200'], idempotencyKey: 'k2' },
      ['python', 'other.py'],
    );
    const merged = mergeSubmissions(file, flags);
    expect(merged.idempotencyKey).toBe('k2');
    expect(merged.spec).toMatchObject({
      name: 'llama-pretrain',
      nodes: 2,
      gpuTypes: ['B200'],
      env: { NCCL_DEBUG: 'WARN', OMP_NUM_THREADS: '8', EXTRA: '1' },
      nodeSelector: { zone: 'a', rack: 'r1' },
      command: ['python', 'other.py'],
      timeLimitSeconds: 7200,
    });
  });

  it('omits flags that were not given', () => {
    expect(submissionFromFlags({}, [])).toEqual({ spec: {} });
    expect(mergeSubmissions(file, submissionFromFlags({}, []))).toEqual(file);
  });

  it('requires a command and defaults nodes to 1', () => {
    expect(() => finalizeSubmission({ spec: { name: 'x' } }, '/home/me')).toThrow(/^no command/);
    expect(finalizeSubmission({ spec: { command: ['a'] } }, '/home/me').spec.nodes).toBe(1);
    expect(finalizeSubmission({ spec: { command: ['a'], nodes: 3 } }, '/home/me').spec.nodes).toBe(3);
  });

  it('starts ranks in the submitter\'s directory unless told otherwise, relative directories from there', () => {
    const dir = (workingDir?: string) => finalizeSubmission({ spec: { command: ['a'], ...(workingDir !== undefined && { workingDir }) } }, '/home/me/llama').spec.workingDir;
    expect(dir()).toBe('/home/me/llama');
    expect(dir('/data/run')).toBe('/data/run');
    expect(dir('sub/dir')).toBe('/home/me/llama/sub/dir');
    expect(dir('')).toBe(''); // each rank's own folder on its node
  });

  it('reads the launcher mode', () => {
    expect(parseJobFile('launcher: per-gpu\ncommand: [python, train.py]\n', 'job.yaml').spec.launcher).toBe(Launcher.LAUNCHER_PER_GPU);
    expect(parseJobFile('launcher: per-node\n', 'job.yaml').spec.launcher).toBe(Launcher.LAUNCHER_PER_NODE);
    expect(() => parseJobFile('launcher: mpi\n', 'job.yaml')).toThrow('job.yaml: launcher: unknown launcher "mpi" (one of per-node, per-gpu)');
  });
});

describe('retry policy', () => {
  it('is read from the job file and from flags, flags winning', () => {
    const file = parseJobFile('retry:\n  maxRecoveries: 5\n  retryOn: [node-fault, application]\n  backoff: 2s\n  backoffMax: 1m\n  backoffJitter: 0.1\ncommand: [x]\n', 'job.yaml');
    expect(file.spec.retry).toEqual({ maxRecoveries: 5, retryOn: [FailureClass.FAILURE_CLASS_NODE_FAULT, FailureClass.FAILURE_CLASS_APPLICATION], backoffInitialMs: 2_000, backoffMaxMs: 60_000, backoffJitter: 0.1 });
    const flags = submissionFromFlags({ maxRecoveries: 1 }, []);
    expect(mergeSubmissions(file, flags).spec.retry).toMatchObject({ maxRecoveries: 1, retryOn: [] });
  });

  it('names the bad field', () => {
    expect(() => parseJobFile('retry:\n  retryOn: [cosmic-rays]\n', 'job.yaml')).toThrow('job.yaml: retry.retryOn[0]: unknown failure class "cosmic-rays" (one of node-fault, infrastructure, application, gpu-contained, hang)');
    expect(() => parseJobFile('retry:\n  tries: 3\n', 'job.yaml')).toThrow('job.yaml: retry.tries: unknown field');
  });
});
