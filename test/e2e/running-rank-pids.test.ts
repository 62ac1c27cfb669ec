// runningRankPids (deploy/local/services.ts) reads an agent's state file, which the agent
// rewrites in place: a read that meets a write half done (it may even parse, with its first
// and last sequence numbers differing) is tried again, and a file that stays torn is an error,
// not "no ranks" (the local stack and the test teardown would leave ranks running).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { runningRankPids } from '../../deploy/local/services.js';

const state = (writeSeq: number, writeEnd: number) => JSON.stringify({
  writeSeq,
  ranks: { 'j-1/1/0': { pid: 4242, phase: 'running' }, 'j-1/1/1': { pid: 4343, phase: 'exited' } },
  writeEnd,
});

describe('runningRankPids', () => {
  it('reads the running ranks of a whole write', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-rank-pids-'));
    writeFileSync(join(dir, 'agent-state.json'), state(7, 7));
    expect(runningRankPids(dir)).toEqual([4242]);
    expect(runningRankPids(join(dir, 'none'))).toEqual([]);
  });

  it('tries again when a read meets a write half done, until the write is whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-rank-pids-'));
    const file = join(dir, 'agent-state.json');
    writeFileSync(file, state(8, 7));
    // Another thread finishes the write 20 ms later, while the read waits (synchronously).
    const writer = new Worker(`
      const { parentPort } = require('node:worker_threads');
      parentPort.postMessage('ready');
      setTimeout(() => require('node:fs').writeFileSync(${JSON.stringify(file)}, ${JSON.stringify(state(8, 8))}), 20);
    `, { eval: true });
    await new Promise((r) => writer.once('message', r));
    expect(runningRankPids(dir)).toEqual([4242]);
    await new Promise((r) => writer.once('exit', r));
  });

  it('fails on a file that stays torn', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-rank-pids-'));
    writeFileSync(join(dir, 'agent-state.json'), state(9, 8));
    expect(() => runningRankPids(dir)).toThrow(/is being written/);
    writeFileSync(join(dir, 'agent-state.json'), '{"writeSeq": 9, "ranks": {');
    expect(() => runningRankPids(dir)).toThrow(SyntaxError);
  });
});
