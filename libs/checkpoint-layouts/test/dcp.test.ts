import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCheckpoint, scanCheckpoints } from '../src/index.js';
import { FIXTURES, byName, copyFixture, halve, summary } from './helpers.js';

describe('PyTorch DCP', () => {
  it('complete save: .metadata present and every storage file long enough; no file for a rank with nothing to write is fine', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'pytorch_dcp'));
    expect(summary(found)).toEqual({ ckpt: 'COMPLETE', ckpt_partial: 'INCOMPLETE' });
    const ckpt = byName(found, 'ckpt');
    expect(ckpt.format).toBe('dcp');
    expect(ckpt.reasons).toEqual([]);
    // 3 ranks saved, rank 2 wrote nothing: no __2_*.distcp, still complete
    expect(ckpt.files.map((f) => f.path)).toEqual(['.metadata', '__0_0.distcp', '__1_0.distcp', '__1_1.distcp']);
    expect(ckpt.totalBytes).toBe(ckpt.files.reduce((n, f) => n + f.size, 0));
    expect(ckpt.files.every((f) => f.sha256 === undefined)).toBe(true);
  });

  it('in progress: .metadata.tmp only', async () => {
    const c = await checkCheckpoint(join(FIXTURES, 'pytorch_dcp', 'ckpt_partial'), 'dcp');
    expect(c.status).toBe('INCOMPLETE');
    expect(c.reasons[0]).toMatch(/\.metadata\.tmp present but no \.metadata/);
  });

  it('corrupt: a storage file removed', async () => {
    const root = await copyFixture('pytorch_dcp');
    await rm(join(root, 'ckpt', '__1_1.distcp'));
    const c = await checkCheckpoint(join(root, 'ckpt'));
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual(['__1_1.distcp is missing (named by .metadata storage_data)']);
  });

  it('corrupt: a storage file truncated', async () => {
    const root = await copyFixture('pytorch_dcp');
    const f = join(root, 'ckpt', '__0_0.distcp');
    const size = (await stat(f)).size;
    await halve(f, size);
    const c = await checkCheckpoint(join(root, 'ckpt'), 'dcp');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual([`__0_0.distcp is ${Math.floor(size / 2)} bytes but .metadata storage_data needs at least ${size} (truncated)`]);
  });

  it.each([
    ['random bytes', Buffer.from('not a pickle at all \x00\xff', 'latin1'), /not a readable pickle/],
    ['an empty file', Buffer.alloc(0), /not a readable pickle .*without STOP/],
  ])('corrupt: garbage .metadata (%s)', async (_n, bytes, reason) => {
    const root = await copyFixture('pytorch_dcp');
    await writeFile(join(root, 'ckpt', '.metadata'), bytes);
    const c = await checkCheckpoint(join(root, 'ckpt'), 'dcp');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons[0]).toMatch(reason);
  });

  it('corrupt: .metadata cut short', async () => {
    const root = await copyFixture('pytorch_dcp');
    const md = join(root, 'ckpt', '.metadata');
    await writeFile(md, (await readFile(md)).subarray(0, 300));
    const c = await checkCheckpoint(join(root, 'ckpt'), 'dcp');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons[0]).toMatch(/^\.metadata is not a readable pickle \(truncated pickle/);
  });

  it('hostile .metadata: never executes, never leaves the directory, reports each', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'hostile'), { format: 'dcp' });
    expect(summary(found)).toEqual({ escape: 'CORRUPT', evil: 'CORRUPT', negative: 'CORRUPT', not_metadata: 'CORRUPT' });
    expect(byName(found, 'escape').reasons).toEqual(['path "../../../../etc/passwd" leaves its checkpoint directory']);
    expect(byName(found, 'evil').reasons).toEqual(['.metadata holds posix.system object, not torch.distributed.checkpoint.metadata.Metadata']);
    expect(byName(found, 'not_metadata').reasons[0]).toMatch(/\.metadata holds dict, not/);
    expect(byName(found, 'negative').reasons[0]).toMatch(/storage_data entry 1 lacks a valid relative_path\/offset\/length/);
  });

  it('bounds the pickle size', async () => {
    const c = await checkCheckpoint(join(FIXTURES, 'pytorch_dcp', 'ckpt'), 'dcp', { limits: { maxPickleBytes: 100 } });
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons[0]).toMatch(/^\.metadata is \d+ bytes, over the limit of 100/);
  });

  it('notes stale .distcp files that .metadata does not name', async () => {
    const root = await copyFixture('pytorch_dcp');
    await writeFile(join(root, 'ckpt', '__5_0.distcp'), 'old');
    const c = await checkCheckpoint(join(root, 'ckpt'), 'dcp');
    expect(c.status).toBe('COMPLETE');
    expect(c.notes).toContain('1 .distcp file(s) not named by .metadata (left by an earlier save?): __5_0.distcp');
  });

  it('reads .metadata pickled at protocol 2 and 5 alike', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'pytorch_dcp_protocols'));
    expect(summary(found)).toEqual({ ckpt_p2: 'COMPLETE', ckpt_p5: 'COMPLETE' });
  });

  it('a directory that is itself one checkpoint', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'pytorch_dcp', 'ckpt'));
    expect(found.map((c) => [c.name, c.status])).toEqual([['ckpt', 'COMPLETE']]);
  });
});
