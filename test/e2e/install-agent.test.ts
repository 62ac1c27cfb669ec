// deploy/install/install-agent.sh run for real into a temporary root (--root, as an image build
// does): it refuses, before changing anything and in one line, an install without the
// scheduler's command signing public key or the node's NATS seed (or with the wrong files);
// with both it places them root-only (0600) where agent.yaml says, and the agent's own loader
// accepts the result; an upgrade without the flags keeps them and puts their permissions back.
// The keys are the real ones `pnpm bus:keys` makes.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../deploy/local/services.js';

const SCRIPT = join(REPO_ROOT, 'deploy/install/install-agent.sh');
const root = process.getuid?.() === 0;
let work: string;
let keys: string;

interface Result { code: number; stdout: string; stderr: string }

function install(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile('bash', [SCRIPT, ...args], { cwd: REPO_ROOT, timeout: 300_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, CI: 'true' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function busKeys(dir: string, node: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('pnpm', ['-s', 'bus:keys', dir, node], { cwd: REPO_ROOT, timeout: 60_000 }, (err) => (err ? reject(err) : resolve()));
  });
}

const mode = (f: string) => (statSync(f).mode & 0o777).toString(8).padStart(4, '0');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'gantry-install-agent-'));
  keys = join(work, 'keys');
  await busKeys(keys, 'gpu-001');
}, 60_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('install-agent.sh: the bus keys', () => {
  const base = ['--nats-url', 'nats://nats.cluster:4222', '--node-name', 'gpu-001', '--address', 'gpu-001.cluster'];

  it('refuses an install missing a key, or given the wrong file, in one line and before changing anything', async () => {
    const stage = mkdtempSync(join(work, 'refused-'));
    const pub = join(keys, 'command-signing.pub');
    const seed = join(keys, 'agent-gpu-001.nk');
    const cases: [string[], string][] = [
      [[], `install-agent.sh: error: no scheduler public key at ${stage}/etc/gantry/scheduler.pub: pass --scheduler-key FILE (command-signing.pub from pnpm bus:keys; docs/security.md)\n`],
      [['--scheduler-key', pub], `install-agent.sh: error: no NATS seed at ${stage}/etc/gantry/agent.nk: pass --nats-seed FILE (this node's agent-NODE.nk from pnpm bus:keys; docs/security.md)\n`],
      [['--nats-seed', seed], `install-agent.sh: error: no scheduler public key at ${stage}/etc/gantry/scheduler.pub: pass --scheduler-key FILE (command-signing.pub from pnpm bus:keys; docs/security.md)\n`],
      [['--scheduler-key', join(keys, 'command-signing.key'), '--nats-seed', seed], `install-agent.sh: error: ${keys}/command-signing.key holds a private key: pass the public key (command-signing.pub); the private key belongs on the scheduler hosts only\n`],
      [['--scheduler-key', pub, '--nats-seed', pub], `install-agent.sh: error: ${pub} is not a NATS NKEY user seed (SU..., agent-NODE.nk from pnpm bus:keys) or a .creds file\n`],
      [['--scheduler-key', join(keys, 'nope.pub'), '--nats-seed', seed], `install-agent.sh: error: scheduler public key ${keys}/nope.pub: no such file, or not readable\n`],
    ];
    for (const [extra, stderr] of cases) {
      expect(await install('--root', stage, ...base, ...extra)).toEqual({ code: 1, stdout: '', stderr });
    }
    expect(readdirSync(stage)).toEqual([]);
  });

  it('places both keys root-only where agent.yaml names them; an upgrade without the flags keeps them and their permissions', async () => {
    const stage = mkdtempSync(join(work, 'root-'));
    const first = await install('--root', stage, ...base, '--scheduler-key', join(keys, 'command-signing.pub'), '--nats-seed', join(keys, 'agent-gpu-001.nk'));
    expect(first.stderr).not.toMatch(/error/);
    expect(first.code).toBe(0);
    const etc = join(stage, 'etc/gantry');
    // The agent's own loader read the staged agent.yaml with the staged keys.
    expect(first.stdout).toContain('config ok: node=gpu-001 address=gpu-001.cluster nats=nats://nats.cluster:4222');
    expect(first.stdout).toContain(`wrote ${etc}/scheduler.pub\n`);
    expect(first.stdout).toContain(`wrote ${etc}/agent.nk\n`);
    for (const [file, source] of [['scheduler.pub', 'command-signing.pub'], ['agent.nk', 'agent-gpu-001.nk']] as const) {
      expect(readFileSync(join(etc, file), 'utf8')).toBe(readFileSync(join(keys, source), 'utf8'));
      expect(mode(join(etc, file))).toBe('0600');
      if (root) expect([statSync(join(etc, file)).uid, statSync(join(etc, file)).gid]).toEqual([0, 0]);
    }
    const yaml = readFileSync(join(etc, 'agent.yaml'), 'utf8');
    expect(yaml).toMatch(/^natsCredsFile: \/etc\/gantry\/agent\.nk$/m);
    expect(yaml).toMatch(/^schedulerPublicKeyFile: \/etc\/gantry\/scheduler\.pub$/m);

    // An upgrade: no key flags; a seed someone made world-readable is made root-only again.
    chmodSync(join(etc, 'agent.nk'), 0o644);
    const upgrade = await install('--root', stage);
    expect(upgrade.code).toBe(0);
    expect(upgrade.stdout).toContain('config ok: node=gpu-001');
    expect(mode(join(etc, 'agent.nk'))).toBe('0600');
    expect(readFileSync(join(etc, 'agent.nk'), 'utf8')).toBe(readFileSync(join(keys, 'agent-gpu-001.nk'), 'utf8'));

    // An agent.yaml that names no seed (it would connect without credentials): refused.
    writeFileSync(join(etc, 'agent.yaml'), yaml.replace(/^natsCredsFile: .*$/m, '# natsCredsFile: /etc/gantry/agent.nk'));
    expect(await install('--root', stage)).toEqual({
      code: 1, stdout: '',
      stderr: `install-agent.sh: error: ${etc}/agent.yaml sets no natsCredsFile: add 'natsCredsFile: /etc/gantry/agent.nk' and run again with --nats-seed FILE (docs/security.md)\n`,
    });
  }, 600_000);
});
