import { describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAZY_WRITE_MS, StateFile, rankKey, type RankRecord } from '../../src/runner/state-file.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-state-test-'));
const turn = () => new Promise((r) => setImmediate(r));

function record(jobId: string, extra: Partial<RankRecord> = {}): RankRecord {
  return { jobId, attempt: 1, rank: 0, pid: 123, dir: `/tmp/${jobId}`, phase: 'running', startedAt: new Date(0).toISOString(), startReported: true, exitReported: false, processes: [], ...extra };
}

const onDisk = (dir: string) => JSON.parse(readFileSync(join(dir, 'agent-state.json'), 'utf8')) as { ranks: Record<string, RankRecord> };
const journal = (dir: string) => readFileSync(join(dir, 'agent-finished.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RankRecord);

describe('agent state file: finished ranks journal', () => {
  it('moves a rank whose exit was reported out of the state file into the journal, once, and reads both back', () => {
    const dir = tmp();
    const s = new StateFile(dir);
    s.state.ranks[rankKey('j-run', 1, 0)] = record('j-run');
    s.state.ranks[rankKey('j-done', 1, 0)] = record('j-done', { phase: 'exited', exitCode: 0, finishedAt: new Date(1).toISOString() });
    s.save();
    // Exited but not yet reported: still in flight.
    expect(Object.keys(onDisk(dir).ranks).sort()).toEqual(['j-done:1:0', 'j-run:1:0']);
    s.state.ranks['j-done:1:0']!.exitReported = true;
    s.save();
    s.save();
    expect(Object.keys(onDisk(dir).ranks)).toEqual(['j-run:1:0']);
    expect(journal(dir).map((r) => r.jobId)).toEqual(['j-done']);
    const again = new StateFile(dir);
    expect(again.state.ranks['j-done:1:0']).toMatchObject({ phase: 'exited', exitCode: 0, exitReported: true });
    expect(again.state.ranks['j-run:1:0']).toMatchObject({ phase: 'running' });
    // Read back, it is not appended again.
    again.save();
    expect(journal(dir)).toHaveLength(1);
  });

  it('prefers the journal when a crash left a rank in both, skips a torn last line and starts the journal afresh', () => {
    const dir = tmp();
    const s = new StateFile(dir);
    s.state.ranks['j-a:1:0'] = record('j-a', { phase: 'exited', exitReported: true, exitCode: 3 });
    s.save();
    // A crash between the journal append and the state write: the state file still has the unreported version.
    writeFileSync(join(dir, 'agent-state.json'), JSON.stringify({ version: 1, highestEpoch: 4, ranks: { 'j-a:1:0': record('j-a', { phase: 'exited', exitCode: 3 }) } }));
    // And a crash in the middle of the next append.
    appendFileSync(join(dir, 'agent-finished.jsonl'), '{"jobId":"j-b","attem');
    const r = new StateFile(dir);
    expect(r.state.highestEpoch).toBe(4);
    expect(r.state.ranks['j-a:1:0']).toMatchObject({ exitReported: true, exitCode: 3 });
    expect(Object.keys(r.state.ranks)).toEqual(['j-a:1:0']);
    r.state.ranks['j-c:1:0'] = record('j-c', { phase: 'exited', exitReported: true });
    r.save();
    expect(journal(dir).map((x) => x.jobId)).toEqual(['j-a', 'j-c']);
    expect(onDisk(dir).ranks).toEqual({});
  });

  it('drops a forgotten rank from the journal', async () => {
    const dir = tmp();
    const s = new StateFile(dir);
    for (const j of ['j-1', 'j-2', 'j-3']) s.state.ranks[rankKey(j, 1, 0)] = record(j, { phase: 'exited', exitReported: true });
    s.save();
    s.forget('j-2:1:0');
    await turn();
    expect(journal(dir).map((r) => r.jobId)).toEqual(['j-1', 'j-3']);
    expect(Object.keys(new StateFile(dir).state.ranks).sort()).toEqual(['j-1:1:0', 'j-3:1:0']);
  });
});

describe('agent state file: coalesced writes', () => {
  it('writes the changes of one turn once, at its end; flush writes at once', async () => {
    const dir = tmp();
    const s = new StateFile(dir);
    s.save();
    s.state.highestEpoch = 1;
    s.saveSoon();
    s.state.highestEpoch = 2;
    s.saveSoon();
    expect(new StateFile(dir).state.highestEpoch).toBe(0);
    await turn();
    expect(new StateFile(dir).state.highestEpoch).toBe(2);
    s.state.highestEpoch = 3;
    s.saveSoon();
    s.flush();
    expect(new StateFile(dir).state.highestEpoch).toBe(3);
  });
});

describe('agent state file: changes that may wait', () => {
  it('writes them with the next write, else within LAZY_WRITE_MS', async () => {
    const dir = tmp();
    const s = new StateFile(dir);
    s.save();
    s.state.highestEpoch = 1;
    s.saveLater();
    await turn();
    // Nothing that must be on disk first: settle leaves it for later, flush writes it.
    s.settle();
    expect(new StateFile(dir).state.highestEpoch).toBe(0);
    s.state.bootId = 'b';
    s.saveSoon();
    await turn();
    expect(new StateFile(dir).state).toMatchObject({ highestEpoch: 1, bootId: 'b' });
    s.state.highestEpoch = 2;
    s.saveLater();
    await new Promise((r) => setTimeout(r, LAZY_WRITE_MS + 100));
    expect(new StateFile(dir).state.highestEpoch).toBe(2);
  });
});

describe('agent state file: writes deferred by the caller', () => {
  it('inside deferring, save waits for the end of the turn (or flush); outside, it writes at once', async () => {
    const dir = tmp();
    const s = new StateFile(dir);
    s.save();
    s.deferring(() => {
      s.state.highestEpoch = 5;
      s.save();
      s.state.ranks['j-d:1:0'] = record('j-d');
      s.save();
    });
    expect(new StateFile(dir).state.highestEpoch).toBe(0);
    s.flush();
    expect(new StateFile(dir).state).toMatchObject({ highestEpoch: 5, ranks: { 'j-d:1:0': { phase: 'running' } } });
    s.deferring(() => { s.state.highestEpoch = 6; s.save(); });
    await turn();
    expect(new StateFile(dir).state.highestEpoch).toBe(6);
    s.state.highestEpoch = 7;
    s.save();
    expect(new StateFile(dir).state.highestEpoch).toBe(7);
  });
});

describe('agent state file: a deferred write that fails', () => {
  it('does not throw out of the event loop: it is reported, stays pending, and the next settle writes it once the disk takes it', async () => {
    const dir = tmp();
    const s = new StateFile(dir);
    const errors: string[] = [];
    s.onWriteError = (err) => errors.push(err.message);
    // The shadow's name taken by a directory: the write fails as on a full disk.
    const blocker = join(dir, 'agent-state.shadow');
    mkdirSync(blocker);
    s.state.ranks[rankKey('j-new', 1, 0)] = record('j-new');
    s.saveSoon();
    await turn();
    expect(errors).toHaveLength(1);
    expect(existsSync(join(dir, 'agent-state.json'))).toBe(false);
    // Still pending: whoever must see it on disk before answering learns it is not.
    expect(() => s.settle()).toThrow();
    rmSync(blocker, { recursive: true });
    s.settle();
    expect(Object.keys(onDisk(dir).ranks)).toEqual(['j-new:1:0']);
  });
});

describe('agent state file: written in place', () => {
  const shadowPath = (dir: string) => join(dir, 'agent-state.shadow');
  const statePath = (dir: string) => join(dir, 'agent-state.json');
  /** Two writes, the files' contents after each. */
  function twoWrites(dir: string) {
    const s = new StateFile(dir);
    s.state.ranks['j-1:1:0'] = record('j-1');
    s.save();
    const first = { state: readFileSync(statePath(dir)), shadow: readFileSync(shadowPath(dir)) };
    s.state.ranks['j-2:1:0'] = record('j-2');
    s.state.highestEpoch = 9;
    s.save();
    const second = { state: readFileSync(statePath(dir)), shadow: readFileSync(shadowPath(dir)) };
    return { first, second };
  }

  it('keeps the same files (no temp file, no new inode) and agent-state.json plain JSON, padded when it shrinks', () => {
    const dir = tmp();
    const s = new StateFile(dir);
    for (let i = 0; i < 20; i++) s.state.ranks[rankKey(`j-${i}`, 1, 0)] = record(`j-${i}`);
    s.save();
    const ino = statSync(statePath(dir)).ino;
    const shadowIno = statSync(shadowPath(dir)).ino;
    const before = statSync(statePath(dir)).size;
    for (let i = 1; i < 20; i++) s.forget(rankKey(`j-${i}`, 1, 0));
    s.flush();
    expect(statSync(statePath(dir)).ino).toBe(ino);
    expect(statSync(shadowPath(dir)).ino).toBe(shadowIno);
    expect(readdirSync(dir).sort()).toEqual(['agent-state.json', 'agent-state.shadow']);
    // Not truncated: the same length, the JSON followed by spaces, readable by anything that reads JSON.
    expect(statSync(statePath(dir)).size).toBe(before);
    expect(Object.keys(onDisk(dir).ranks)).toEqual(['j-0:1:0']);
    expect(Object.keys(new StateFile(dir).state.ranks)).toEqual(['j-0:1:0']);
  });

  it('takes the shadow when agent-state.json was torn by a crash mid-write', () => {
    const dir = tmp();
    const { first, second } = twoWrites(dir);
    // The second write's shadow is whole; agent-state.json half new, half old.
    const torn = Buffer.concat([second.state.subarray(0, 40), first.state.subarray(40)]);
    writeFileSync(statePath(dir), torn);
    const r = new StateFile(dir);
    expect(r.state.highestEpoch).toBe(9);
    expect(Object.keys(r.state.ranks).sort()).toEqual(['j-1:1:0', 'j-2:1:0']);
  });

  it('takes the shadow when the crash came between it and agent-state.json', () => {
    const dir = tmp();
    const { first } = twoWrites(dir);
    writeFileSync(statePath(dir), first.state);
    const r = new StateFile(dir);
    expect(r.state.highestEpoch).toBe(9);
    expect(Object.keys(r.state.ranks).sort()).toEqual(['j-1:1:0', 'j-2:1:0']);
  });

  it('takes agent-state.json when the shadow was torn (or corrupted) by a crash mid-write', () => {
    for (const damage of [(b: Buffer) => b.subarray(0, b.length - 10), (b: Buffer) => Buffer.concat([b.subarray(0, b.length - 3), Buffer.from('xyz')])]) {
      const dir = tmp();
      const { first, second } = twoWrites(dir);
      writeFileSync(shadowPath(dir), damage(second.shadow));
      writeFileSync(statePath(dir), first.state);
      const r = new StateFile(dir);
      expect(r.state.highestEpoch).toBe(0);
      expect(Object.keys(r.state.ranks)).toEqual(['j-1:1:0']);
    }
  });

  it('takes agent-state.json when an older agent (temp file and rename, no shadow) wrote it after this one', () => {
    const dir = tmp();
    twoWrites(dir);
    // The older agent read agent-state.json, ran another rank and wrote its own version.
    const older = { version: 1, highestEpoch: 11, ranks: { ...onDisk(dir).ranks, 'j-3:1:0': record('j-3') } };
    writeFileSync(`${statePath(dir)}.tmp`, JSON.stringify(older));
    renameSync(`${statePath(dir)}.tmp`, statePath(dir));
    const r = new StateFile(dir);
    expect(r.state.highestEpoch).toBe(11);
    expect(Object.keys(r.state.ranks).sort()).toEqual(['j-1:1:0', 'j-2:1:0', 'j-3:1:0']);
    // And writes both files afresh: read again, nothing is lost.
    r.state.highestEpoch = 12;
    r.save();
    const again = new StateFile(dir);
    expect(again.state.highestEpoch).toBe(12);
    expect(Object.keys(again.state.ranks).sort()).toEqual(['j-1:1:0', 'j-2:1:0', 'j-3:1:0']);
  });

  it('reads the state file of an older agent, without a shadow', () => {
    const dir = tmp();
    writeFileSync(statePath(dir), JSON.stringify({ version: 1, highestEpoch: 3, bootId: 'b', ranks: { 'j-old:1:0': record('j-old') } }));
    const r = new StateFile(dir);
    expect(r.state).toMatchObject({ highestEpoch: 3, bootId: 'b' });
    expect(Object.keys(r.state.ranks)).toEqual(['j-old:1:0']);
  });

  it('starts afresh when agent-state.json was removed, whatever the shadow holds, and moves an unreadable one aside when the shadow cannot stand in', () => {
    const dir = tmp();
    twoWrites(dir);
    rmSync(statePath(dir));
    expect(new StateFile(dir).state.ranks).toEqual({});
    const other = tmp();
    twoWrites(other);
    writeFileSync(statePath(other), '{not json');
    writeFileSync(shadowPath(other), 'gantry-agent-state-shadow 1 2 5 0 0\n{"ve');
    expect(new StateFile(other).state.ranks).toEqual({});
    expect(readdirSync(other).some((f) => f.startsWith('agent-state.json.corrupt-'))).toBe(true);
  });
});
