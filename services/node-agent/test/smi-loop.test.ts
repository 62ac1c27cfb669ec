// The long-running nvidia-smi loop (src/device/smi-loop.ts) and the backend's loop mode,
// against a shell stand-in that counts its starts and numbers its readings.
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NvidiaSmiBackend, SmiLoop } from '../src/device/index.js';
import { createBackend } from '../src/backend.js';
import { loadAgentConfig } from '../src/config.js';
import { schedulerKeyEnv } from './helpers/command-keys.js';
import { everyLms } from './helpers/fake-nvidia-smi.js';

const dir = mkdtempSync(join(tmpdir(), 'gantry-smi-loop-'));

function standIn(name: string, body = ''): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh
echo start >> "${dir}/${name}.starts"
mode=
for a in "$@"; do case "$a" in --query-gpu=*) mode=csv;; pci) mode=pci;; esac; done
n=0
${everyLms(`  n=$((n + 1))
  if [ "$mode" = csv ]; then printf '0, %d\\n1, %d\\n' $n $n
  else printf 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)\\n    REPLAY_COUNTER:          %d\\n' $n; fi`, body)}`);
  chmodSync(path, 0o755);
  return path;
}

const starts = (name: string) => readFileSync(join(dir, `${name}.starts`), 'utf8').trim().split('\n').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stops: (() => void)[] = [];
afterEach(() => stops.splice(0).forEach((s) => s()));

describe('SmiLoop', () => {
  it('keeps the newest reading of one long-running nvidia-smi', async () => {
    const loop = new SmiLoop({ binary: standIn('csv'), args: ['--query-gpu=index,x', '--format=csv,noheader,nounits'], intervalMs: 200 });
    stops.push(() => loop.stop());
    expect(await loop.read(5000)).toBe('0, 1\n1, 1\n');
    // Past 1.5 intervals + 1 s a reading is stale: the next one is awaited.
    await sleep(1700);
    const later = await loop.read(5000);
    expect(Number(/^0, (\d+)/.exec(later)![1])).toBeGreaterThan(1);
    expect(starts('csv')).toBe(1);
  });

  it('rejects with a timed-out NvidiaSmiError when no reading comes, and restarts on the next read', async () => {
    const loop = new SmiLoop({ binary: standIn('hung', 'sleep 30'), args: ['--query-gpu=index'], intervalMs: 100 });
    stops.push(() => loop.stop());
    await expect(loop.read(300)).rejects.toMatchObject({ name: 'NvidiaSmiError', timedOut: true });
    await expect(loop.read(300)).rejects.toMatchObject({ timedOut: true });
    expect(starts('hung')).toBe(2);
  });

  it('rejects with what nvidia-smi printed when it exits', async () => {
    const loop = new SmiLoop({ binary: standIn('lost', 'echo "Unable to determine the device handle for GPU 0000:18:00.0: GPU is lost." >&2; exit 15'), args: ['--query-gpu=index'], intervalMs: 100 });
    stops.push(() => loop.stop());
    await expect(loop.read(5000)).rejects.toMatchObject({ name: 'NvidiaSmiError', timedOut: false, stderr: expect.stringContaining('GPU is lost') });
  });
});

describe('NvidiaSmiBackend with loopIntervalMs', () => {
  it('forks once to settle the fields, then reads --query-gpu from a loop (the PCIe error counters fork every cycle: `pci` has no loop)', async () => {
    const binary = standIn('backend');
    const backend = new NvidiaSmiBackend({ binary, loopIntervalMs: 200 });
    stops.push(() => backend.close());
    const first = await backend.readGpuMetricsText();
    expect(first.csv).toBe('0, 1\n1, 1\n');
    expect(starts('backend')).toBe(2); // one query, one pci -gErrCnt
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await backend.readGpuMetricsText();
      seen.push(r.csv);
      expect(r.pcieErrors).toContain('REPLAY_COUNTER');
      await sleep(250);
    }
    expect(backend.loopPids()).toHaveLength(1);
    expect(starts('backend')).toBe(8); // + the loop, however many cycles, + a pci fork per cycle
    expect(new Set(seen).size).toBeGreaterThan(1);
  });

  it('falls back to a fork for the cycle when the loop fails', async () => {
    // Exits at once when looping; answers one-shot queries.
    const binary = standIn('flaky', '[ "$loop" != 0 ] && { echo "GPU is lost" >&2; exit 15; }');
    const backend = new NvidiaSmiBackend({ binary, loopIntervalMs: 200 });
    stops.push(() => backend.close());
    await backend.readGpuMetricsText();
    const r = await backend.readGpuMetricsText();
    expect(r.csv).toBe('0, 1\n1, 1\n');
    expect(starts('flaky')).toBe(5); // 2 forks, 1 failed loop, 2 forks
  });
});

describe('the agent configuration', () => {
  const env = () => ({ GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n0', GANTRY_STATE_DIR: dir, DEVICE_BACKEND: 'nvidia-smi', TELEMETRY_INTERVAL_MS: '500', ...schedulerKeyEnv() });

  it('runs --query-gpu as a loop at the telemetry interval by default (GANTRY_NVIDIA_SMI_LOOP=true), a fork per query with false', async () => {
    // createBackend finds nvidia-smi on PATH: the stand-in, under that name.
    const bin = mkdtempSync(join(tmpdir(), 'gantry-smi-path-'));
    writeFileSync(join(bin, 'nvidia-smi'), `#!/bin/sh\nexec ${standIn('cfg')} "$@"\n`);
    chmodSync(join(bin, 'nvidia-smi'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      expect(() => loadAgentConfig({ ...env(), GANTRY_NVIDIA_SMI_LOOP: 'yes' })).toThrow(/GANTRY_NVIDIA_SMI_LOOP/);
      const looping = await createBackend(loadAgentConfig(env())) as NvidiaSmiBackend;
      stops.push(() => looping.close());
      // The first cycle forks once to settle the fields; the loops serve the cycles after it.
      await looping.readGpuMetricsText();
      await looping.readGpuMetricsText();
      expect(looping.loopPids()).toHaveLength(1);
      const forking = await createBackend(loadAgentConfig({ ...env(), GANTRY_NVIDIA_SMI_LOOP: 'false' })) as NvidiaSmiBackend;
      await forking.readGpuMetricsText();
      await forking.readGpuMetricsText();
      expect(forking.loopPids()).toHaveLength(0);
    } finally {
      process.env.PATH = path;
    }
  });
});
