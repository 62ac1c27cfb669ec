import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCheckpoint, scanCheckpoints } from '../src/index.js';
import { FIXTURES, byName, copyFixture, halve, summary } from './helpers.js';

describe('Megatron-LM torch_dist', () => {
  it('complete: tracker names the newest, metadata.json valid, shards long enough; an unfinished newer save is incomplete', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'megatron', 'save'));
    expect(found.map((c) => [c.name, c.step, c.status, c.variant, c.latest])).toEqual([
      ['iter_0001000', 1000, 'COMPLETE', 'torch_dist', false],
      ['iter_0002000', 2000, 'COMPLETE', 'torch_dist', true],
      ['iter_0003000', 3000, 'INCOMPLETE', 'torch_dist', false],
    ]);
    expect(byName(found, 'iter_0003000').reasons).toEqual([
      'newer than the tracker (iteration 2000): the save has not finished (the tracker is written last)',
      'no metadata.json (Megatron writes it after all shards and .metadata; the other checkpoints here have one)',
    ]);
    expect(byName(found, 'iter_0001000').files.map((f) => f.path)).toContain('common.pt');
  });

  it('in progress: no tracker yet means no save has completed', async () => {
    const root = await copyFixture('megatron');
    await rm(join(root, 'save', 'latest_checkpointed_iteration.txt'));
    const found = await scanCheckpoints(join(root, 'save'), { format: 'megatron' });
    expect(summary(found)).toEqual({ iter_0001000: 'INCOMPLETE', iter_0002000: 'INCOMPLETE', iter_0003000: 'INCOMPLETE' });
    expect(byName(found, 'iter_0002000').reasons[0]).toMatch(/^no latest_checkpointed_iteration.txt beside it: Megatron writes it after every rank finished/);
  });

  it('in progress: shards and metadata.json written, tracker not yet moved', async () => {
    const root = await copyFixture('megatron');
    await writeFile(join(root, 'save', 'latest_checkpointed_iteration.txt'), '1000');
    const found = await scanCheckpoints(join(root, 'save'));
    expect(summary(found)).toEqual({ iter_0001000: 'COMPLETE', iter_0002000: 'INCOMPLETE', iter_0003000: 'INCOMPLETE' });
  });

  it('corrupt: a shard that .metadata names is removed', async () => {
    const root = await copyFixture('megatron');
    await rm(join(root, 'save', 'iter_0002000', '__3_0.distcp'));
    const c = await checkCheckpoint(join(root, 'save', 'iter_0002000'));
    expect(c.format).toBe('megatron');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual(['__3_0.distcp is missing (named by .metadata storage_data)']);
  });

  it('corrupt: a shard truncated, and common.pt cut short', async () => {
    const root = await copyFixture('megatron');
    const it1 = join(root, 'save', 'iter_0001000');
    await halve(join(it1, '__1_0.distcp'), (await stat(join(it1, '__1_0.distcp'))).size);
    await halve(join(it1, 'common.pt'), (await stat(join(it1, 'common.pt'))).size);
    const c = await checkCheckpoint(it1, 'megatron');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toHaveLength(2);
    expect(c.reasons[0]).toMatch(/^__1_0\.distcp is \d+ bytes but \.metadata storage_data needs at least \d+ \(truncated\)$/);
    expect(c.reasons[1]).toBe('common.pt has no zip end-of-central-directory record: truncated or still being written');
  });

  it('corrupt: garbage .metadata and garbage metadata.json', async () => {
    const root = await copyFixture('megatron');
    await writeFile(join(root, 'save', 'iter_0002000', '.metadata'), Buffer.from([0x80, 0x04, 0x95, 1, 2, 3]));
    await writeFile(join(root, 'save', 'iter_0001000', 'metadata.json'), '{"sharded_backend": "torch_di');
    const found = await scanCheckpoints(join(root, 'save'));
    expect(summary(found)).toMatchObject({ iter_0001000: 'CORRUPT', iter_0002000: 'CORRUPT' });
    expect(byName(found, 'iter_0002000').reasons[0]).toMatch(/^\.metadata is not a readable pickle \(truncated pickle/);
    expect(byName(found, 'iter_0001000').reasons[0]).toMatch(/^metadata\.json is not valid JSON/);
  });

  it('corrupt: the tracker names an iteration that does not exist, or holds garbage', async () => {
    const root = await copyFixture('megatron');
    await writeFile(join(root, 'save', 'latest_checkpointed_iteration.txt'), '2500');
    let found = await scanCheckpoints(join(root, 'save'));
    const ghost = byName(found, 'iter_0002500');
    expect([ghost.status, ghost.latest, ghost.files]).toEqual(['CORRUPT', true, []]);
    expect(ghost.reasons).toEqual(['latest_checkpointed_iteration.txt names iteration 2500 but iter_0002500/ does not exist']);
    await writeFile(join(root, 'save', 'latest_checkpointed_iteration.txt'), '');
    found = await scanCheckpoints(join(root, 'save'));
    expect(byName(found, 'iter_0002000').status).toBe('CORRUPT');
    expect(byName(found, 'iter_0002000').reasons[0]).toMatch(/holds "", not an iteration or "release": Megatron cannot load/);
  });
});

describe('Megatron-LM legacy torch format (mp_rank_*)', () => {
  it('complete: the TP x PP grid recorded in args is all there', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'megatron_legacy', 'save'));
    expect(found.map((c) => [c.name, c.status, c.variant, c.latest])).toEqual([['iter_0002000', 'COMPLETE', 'torch', true]]);
    expect(found[0]!.files).toHaveLength(8);
  });

  it('corrupt: a whole rank directory missing (found from args, not from the directories left)', async () => {
    const root = await copyFixture('megatron_legacy');
    await rm(join(root, 'save', 'iter_0002000', 'mp_rank_01_001'), { recursive: true });
    const c = await checkCheckpoint(join(root, 'save', 'iter_0002000'));
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual(['1 model-parallel rank directory missing (TP=2 PP=2 from args in model_optim_rng.pt): mp_rank_01_001/']);
  });

  it('corrupt: a model file removed, an optimizer file truncated', async () => {
    const root = await copyFixture('megatron_legacy');
    const it2 = join(root, 'save', 'iter_0002000');
    await rm(join(it2, 'mp_rank_00_001', 'model_optim_rng.pt'));
    await halve(join(it2, 'mp_rank_01_000', 'distrib_optim.pt'), (await stat(join(it2, 'mp_rank_01_000', 'distrib_optim.pt'))).size);
    const c = await checkCheckpoint(it2, 'megatron');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual([
      'mp_rank_00_001/model_optim_rng.pt is missing',
      'mp_rank_01_000/distrib_optim.pt has no zip end-of-central-directory record: truncated or still being written',
    ]);
  });

  it('in progress: newer than the tracker', async () => {
    const root = await copyFixture('megatron_legacy');
    await writeFile(join(root, 'save', 'latest_checkpointed_iteration.txt'), '1000');
    const found = await scanCheckpoints(join(root, 'save'));
    expect(found.map((c) => c.name + ':' + c.status)).toEqual(['iter_0001000:CORRUPT', 'iter_0002000:INCOMPLETE']);
  });
});

describe('Megatron-LM release checkpoints', () => {
  it('a tracker holding "release" points at release/ (iteration 0)', async () => {
    const root = await copyFixture('megatron_legacy');
    const save = join(root, 'save');
    await rename(join(save, 'iter_0002000'), join(save, 'release'));
    await writeFile(join(save, 'latest_checkpointed_iteration.txt'), 'release\n');
    const found = await scanCheckpoints(save);
    expect(found.map((c) => [c.name, c.step, c.status, c.latest])).toEqual([['release', 0, 'COMPLETE', true]]);
  });
});
