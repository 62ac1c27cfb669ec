import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCheckpoint, scanCheckpoints } from '../src/index.js';
import { FIXTURES, copyFixture, halve } from './helpers.js';

describe('TorchTitan', () => {
  it('finds step-N under the dump folder\'s checkpoint/; .metadata or model.safetensors.index.json makes it valid', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'torchtitan', 'dump_folder'));
    expect(found.map((c) => [c.name, c.step, c.status, c.variant])).toEqual([
      ['step-500', 500, 'COMPLETE', 'dcp'],
      ['step-1000', 1000, 'INCOMPLETE', undefined],
      ['step-1500', 1500, 'COMPLETE', 'hf'],
    ]);
    expect(found[0]!.files).toHaveLength(9);
  });

  it('in progress: shards only, or .metadata.tmp', async () => {
    const root = await copyFixture('torchtitan');
    let c = await checkCheckpoint(join(root, 'dump_folder', 'checkpoint', 'step-1000'));
    expect(c.reasons).toEqual(['neither .metadata nor model.safetensors.index.json: the save is in progress or crashed']);
    await writeFile(join(root, 'dump_folder', 'checkpoint', 'step-1000', '.metadata.tmp'), 'x');
    c = await checkCheckpoint(join(root, 'dump_folder', 'checkpoint', 'step-1000'), 'torchtitan');
    expect([c.status, c.reasons]).toEqual(['INCOMPLETE', ['.metadata.tmp present but no .metadata: the save is in progress or crashed']]);
  });

  it('corrupt: a shard removed and one truncated', async () => {
    const root = await copyFixture('torchtitan');
    const step = join(root, 'dump_folder', 'checkpoint', 'step-500');
    await rm(join(step, '__7_0.distcp'));
    await halve(join(step, '__2_0.distcp'), (await stat(join(step, '__2_0.distcp'))).size);
    const c = await checkCheckpoint(step);
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual([
      expect.stringMatching(/^__2_0\.distcp is \d+ bytes but \.metadata storage_data needs at least \d+ \(truncated\)$/),
      '__7_0.distcp is missing (named by .metadata storage_data)',
    ]);
  });

  it('corrupt: garbage .metadata; HF export with a shard missing', async () => {
    const root = await copyFixture('torchtitan');
    const folder = join(root, 'dump_folder', 'checkpoint');
    await writeFile(join(folder, 'step-500', '.metadata'), Buffer.from('\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x05torch', 'latin1'));
    await rm(join(folder, 'step-1500', 'model-00002-of-00002.safetensors'));
    const found = await scanCheckpoints(folder, { format: 'torchtitan' });
    expect(found.map((c) => [c.name, c.status, c.reasons[0]])).toEqual([
      ['step-500', 'CORRUPT', expect.stringMatching(/^\.metadata is not a readable pickle/)],
      ['step-1000', 'INCOMPLETE', expect.any(String)],
      ['step-1500', 'CORRUPT', 'model-00002-of-00002.safetensors is missing'],
    ]);
  });
});
