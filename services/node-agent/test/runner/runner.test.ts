import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { interpretStatus, WRAPPER_SCRIPT } from '../../src/runner/wrapper.js';
import { LogTail, MAX_LINE_BYTES } from '../../src/runner/log-tail.js';
import { StateFile } from '../../src/runner/state-file.js';
import { loadAgentConfig } from '../../src/config.js';
import { commandKeys, schedulerKeyEnv } from '../helpers/command-keys.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-agent-test-'));

describe('rank wrapper', () => {
  it('records the exit code of the command in the exit file', () => {
    const dir = tmp();
    const exitFile = join(dir, 'exit');
    let code = 0;
    try {
      execFileSync('/bin/sh', ['-c', WRAPPER_SCRIPT, 'gantry-rank', 'sh', '-c', 'exit 5'], { env: { GANTRY_EXIT_FILE: exitFile, PATH: process.env.PATH } });
    } catch (err) {
      code = (err as { status: number }).status;
    }
    expect(code).toBe(5);
    expect(execFileSync('cat', [exitFile], { encoding: 'utf8' }).trim()).toBe('5');
  });

  it('interprets 128+N as signal N and anything else as an exit code', () => {
    expect(interpretStatus(0)).toEqual({ exitCode: 0, signal: '' });
    expect(interpretStatus(3)).toEqual({ exitCode: 3, signal: '' });
    expect(interpretStatus(143)).toEqual({ exitCode: undefined, signal: 'SIGTERM' });
    expect(interpretStatus(137)).toEqual({ exitCode: undefined, signal: 'SIGKILL' });
    expect(interpretStatus(255)).toEqual({ exitCode: 255, signal: '' });
  });
});

describe('log tail', () => {
  it('yields complete lines, keeps a partial one until it completes, and resumes from an offset', () => {
    const f = join(tmp(), 'out.log');
    writeFileSync(f, 'one\ntwo\r\nthr');
    const t = new LogTail(f, 0);
    expect(t.readLines()).toEqual(['one', 'two']);
    appendFileSync(f, 'ee\n');
    expect(t.readLines()).toEqual(['three']);
    const resumed = new LogTail(f, 4);
    expect(resumed.readLines()).toEqual(['two', 'three']);
    appendFileSync(f, 'tail without newline');
    expect(t.readLines(true)).toEqual(['tail without newline']);
  });

  it('splits a runaway line rather than buffering it whole', () => {
    const f = join(tmp(), 'big.log');
    writeFileSync(f, `${'x'.repeat(MAX_LINE_BYTES * 2 + 10)}\n`);
    const lines = new LogTail(f, 0).readLines();
    expect(lines.map((l) => l.length)).toEqual([MAX_LINE_BYTES, MAX_LINE_BYTES, 10]);
  });
});

describe('agent state file', () => {
  it('survives a restart and moves a corrupt file aside instead of failing', () => {
    const dir = tmp();
    const a = new StateFile(dir);
    a.state.highestEpoch = 7;
    a.save();
    expect(new StateFile(dir).state.highestEpoch).toBe(7);
    writeFileSync(join(dir, 'agent-state.json'), '{not json');
    const c = new StateFile(dir);
    expect(c.state.ranks).toEqual({});
  });
});

describe('agent config', () => {
  it('takes the file, then environment overrides', () => {
    const f = join(tmp(), 'agent.yaml');
    writeFileSync(f, 'node: gpu-001\naddress: 10.1.2.3\nnatsUrl: nats://nats:4222\nstateDir: /tmp/x\ntopology:\n  leafSwitch: leaf-7\nlabels:\n  pool: train\n');
    const cfg = loadAgentConfig({ GANTRY_AGENT_CONFIG: f, TOPOLOGY_SPINE: 'spine-2', SIM_GPUS: '4', ...schedulerKeyEnv() });
    expect(cfg).toMatchObject({ node: 'gpu-001', address: '10.1.2.3', topology: { leafSwitch: 'leaf-7', spine: 'spine-2' }, labels: { pool: 'train' }, device: { simGpus: 4 } });
  });

  it('names the bad setting and where it came from', () => {
    expect(() => loadAgentConfig({ GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'bad name', GANTRY_STATE_DIR: '/tmp', ...schedulerKeyEnv() })).toThrow(/GANTRY_NODE_NAME \(node\): must be letters/);
    expect(() => loadAgentConfig({ GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n1', HEARTBEAT_INTERVAL_MS: 'soon' })).toThrow(/HEARTBEAT_INTERVAL_MS \(heartbeatIntervalMs\)/);
  });

  it('requires the scheduler\'s command signing public key, and checks it is one', () => {
    const env = { GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n1', GANTRY_STATE_DIR: '/tmp' };
    expect(() => loadAgentConfig(env)).toThrow(/schedulerPublicKeyFile in \/dev\/null: required \(or SCHEDULER_PUBLIC_KEY_FILE\): the scheduler's command signing public key/);
    expect(() => loadAgentConfig({ ...env, SCHEDULER_PUBLIC_KEY_FILE: '/nonexistent.pub' })).toThrow(/SCHEDULER_PUBLIC_KEY_FILE \(schedulerPublicKeyFile\): \/nonexistent.pub: ENOENT/);
    // The private key is not a public key file.
    expect(() => loadAgentConfig({ ...env, SCHEDULER_PUBLIC_KEY_FILE: commandKeys().privateKeyFile })).toThrow(/no PEM public key/);
    expect(loadAgentConfig({ ...env, ...schedulerKeyEnv() }).schedulerPublicKeyFile).toBe(commandKeys().publicKeyFile);
  });
});

describe('rank runner edge cases', () => {
  it('remembers a rank stopped before its assignment arrived and refuses the late assignment', async () => {
    const { RankRunner } = await import('../../src/runner/rank-runner.js');
    const { pino } = await import('pino');
    const state = new StateFile(tmp());
    const runner = new RankRunner(state, pino({ level: 'silent' }));
    runner.stop('j-1', 1, 0, 5, 'job cancelled');
    expect(state.state.ranks['j-1:1:0']).toMatchObject({ phase: 'exited', signal: 'SIGKILL', exitReported: false });
    const late = runner.assign({ jobId: 'j-1', attempt: 1, rank: 0, command: ['true'], env: {}, workingDir: '', gpuIndices: [], runAsUser: '', stopGraceSeconds: 1, processes: [] });
    expect(late).toEqual({ ok: true, message: 'already finished' });
    expect(runner.running()).toEqual([]);
  });
});

describe('log batches', () => {
  it('stay under NATS max_payload however long the lines are', async () => {
    const { batchLines } = await import('../../src/reporting/rank-reporter.js');
    const huge = Array.from({ length: 128 }, () => 'x'.repeat(MAX_LINE_BYTES));
    const batches = batchLines(huge);
    expect(batches.flat()).toHaveLength(128);
    for (const b of batches) expect(b.reduce((n, l) => n + Buffer.byteLength(l), 0)).toBeLessThanOrEqual(512 * 1024);
    expect(batchLines(Array.from({ length: 1200 }, (_, i) => `line ${i}`)).map((b) => b.length)).toEqual([500, 500, 200]);
  });
});

describe('rank log bound on disk', () => {
  it('empties a shipped log past the limit once nothing unread is left, and the tail starts over', async () => {
    const { truncateShipped } = await import('../../src/runner/log-tail.js');
    const f = join(tmp(), 'out.log');
    writeFileSync(f, 'a'.repeat(100) + '\n');
    const t = new LogTail(f, 0);
    expect(truncateShipped(t, 50)).toBe(false); // nothing read (shipped) yet
    t.readLines();
    appendFileSync(f, 'more\n');
    expect(truncateShipped(t, 50)).toBe(false); // unread data: wait for a quiet moment
    expect(t.readLines()).toEqual(['more']);
    expect(truncateShipped(t, 1_000)).toBe(false); // under the limit
    expect(truncateShipped(t, 50)).toBe(true);
    appendFileSync(f, 'after\n');
    expect(t.readLines()).toEqual(['after']);
  });
});

describe('re-adoption after a reboot', () => {
  it('records ranks of an earlier boot as ended and signals nothing (their pids are someone else\'s now)', async () => {
    const { spawn } = await import('node:child_process');
    const { RankRunner } = await import('../../src/runner/rank-runner.js');
    const { pino } = await import('pino');
    // A process that merely has the recorded pid: it must survive the agent's start-up.
    const bystander = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    try {
      const state = new StateFile(tmp());
      state.state.bootId = 'an-earlier-boot';
      state.state.ranks['j-1:1:0'] = {
        jobId: 'j-1', attempt: 1, rank: 0, pid: bystander.pid!, dir: join(state.dir, 'ranks', 'j-1-1-0'), phase: 'running',
        startedAt: new Date().toISOString(), startReported: true, exitReported: false, logs: { stdout: { offset: 0, seq: 0 }, stderr: { offset: 0, seq: 0 } },
      };
      state.save();
      const runner = new RankRunner(state, pino({ level: 'silent' }));
      runner.start();
      runner.stopPolling();
      expect(state.state.ranks['j-1:1:0']).toMatchObject({ phase: 'exited', signal: 'SIGKILL', message: 'the host rebooted while the rank ran' });
      expect(state.state.bootId).not.toBe('an-earlier-boot');
      expect(() => process.kill(bystander.pid!, 0)).not.toThrow();
    } finally {
      bystander.kill('SIGKILL');
    }
  });
});

describe('re-adoption of ranks whose wrapper ended while no agent watched', () => {
  it('takes the status the wrapper wrote, and an empty or missing exit file as the wrapper killed', async () => {
    const { mkdirSync } = await import('node:fs');
    const { RankRunner } = await import('../../src/runner/rank-runner.js');
    const { pino } = await import('pino');
    const state = new StateFile(tmp());
    const exits: Record<string, string | undefined> = { 'j-written': '3\n', 'j-empty': '', 'j-missing': undefined };
    for (const [jobId, content] of Object.entries(exits)) {
      const dir = join(state.dir, 'ranks', `${jobId}-1-0`);
      mkdirSync(dir, { recursive: true });
      if (content !== undefined) writeFileSync(join(dir, 'exit'), content);
      // pid 0: no process (a gone wrapper).
      state.state.ranks[`${jobId}:1:0`] = {
        jobId, attempt: 1, rank: 0, pid: 0, dir, phase: 'running', startedAt: new Date().toISOString(), startReported: true, exitReported: false,
        processes: [{ local: 0, pid: 0, dir, phase: 'running', logs: { stdout: { offset: 0, seq: 0 }, stderr: { offset: 0, seq: 0 } } }],
      };
    }
    state.save();
    const runner = new RankRunner(state, pino({ level: 'silent' }));
    runner.start();
    runner.stopPolling();
    const after = new StateFile(state.dir).state.ranks;
    expect(after['j-written:1:0']).toMatchObject({ phase: 'exited', exitCode: 3, signal: '' });
    for (const k of ['j-empty:1:0', 'j-missing:1:0']) {
      expect(after[k]).toMatchObject({ phase: 'exited', signal: 'SIGKILL' });
      expect(after[k]!.exitCode).toBeUndefined();
    }
  });
});
