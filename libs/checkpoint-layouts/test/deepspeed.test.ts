import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCheckpoint, scanCheckpoints } from '../src/index.js';
import { FIXTURES, byName, copyFixture, halve } from './helpers.js';

describe('DeepSpeed', () => {
  it('complete: as many *_optim_states.pt as the partition_count recorded inside them (ZeRO-3, int)', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'deepspeed', 'save_dir'));
    expect(found.map((c) => [c.name, c.step, c.status, c.variant, c.latest])).toEqual([
      ['global_step1000', 1000, 'COMPLETE', 'zero3', true],
      ['global_step2000', 2000, 'INCOMPLETE', 'zero3', false],
    ]);
    expect(byName(found, 'global_step1000').files).toHaveLength(8);
  });

  it('complete: ZeRO-2 with partition_count per param group (a list)', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'deepspeed_zero2', 'save_dir'), { format: 'deepspeed' });
    expect(found.map((c) => [c.name, c.status, c.variant])).toEqual([['global_step300', 'COMPLETE', 'zero2']]);
  });

  it('in progress: fewer optimizer partitions than recorded, `latest` not moved yet', async () => {
    const c = await checkCheckpoint(join(FIXTURES, 'deepspeed', 'save_dir', 'global_step2000'));
    expect(c.format).toBe('deepspeed');
    expect(c.status).toBe('INCOMPLETE');
    expect(c.reasons).toEqual(['expected 4 *_optim_states.pt (partition_count recorded inside them) for mp_rank_00, found 2; missing DP rank(s) 2, 3']);
  });

  it('corrupt: `latest` written (no barrier) while a partition is missing', async () => {
    const root = await copyFixture('deepspeed');
    await writeFile(join(root, 'save_dir', 'latest'), 'global_step2000');
    const c = await checkCheckpoint(join(root, 'save_dir', 'global_step2000'));
    expect([c.status, c.latest]).toEqual(['CORRUPT', true]);
    expect(c.reasons[0]).toMatch(/^`latest` names this tag but expected 4 \*_optim_states\.pt/);
  });

  it('corrupt: an optimizer partition removed from the latest tag', async () => {
    const root = await copyFixture('deepspeed');
    await rm(join(root, 'save_dir', 'global_step1000', 'bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt'));
    const c = await checkCheckpoint(join(root, 'save_dir', 'global_step1000'), 'deepspeed');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual([
      '`latest` names this tag but expected 4 *_optim_states.pt (partition_count recorded inside them) for mp_rank_00, found 3; missing DP rank(s) 1',
    ]);
  });

  it('corrupt: a partition truncated (no zip central directory) and a model-states file removed', async () => {
    const root = await copyFixture('deepspeed');
    const tag = join(root, 'save_dir', 'global_step1000');
    const f = join(tag, 'bf16_zero_pp_rank_3_mp_rank_00_optim_states.pt');
    await halve(f, (await stat(f)).size);
    await rm(join(tag, 'zero_pp_rank_2_mp_rank_00_model_states.pt'));
    const c = await checkCheckpoint(tag, 'deepspeed');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons[0]).toBe(
      '`latest` names this tag but bf16_zero_pp_rank_3_mp_rank_00_optim_states.pt has no zip end-of-central-directory record: truncated or still being written; ' +
        'ZeRO-3 model states for mp_rank_00 missing DP rank(s) 2 (dp_world_size 4)',
    );
  });

  it('corrupt: garbage in an optimizer partition, `latest` naming a missing tag', async () => {
    const root = await copyFixture('deepspeed');
    await writeFile(join(root, 'save_dir', 'global_step1000', 'bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt'), 'PK\x03\x04' + 'garbage'.repeat(20));
    await writeFile(join(root, 'save_dir', 'latest'), 'global_step3000');
    const found = await scanCheckpoints(join(root, 'save_dir'));
    expect(found.map((c) => [c.name, c.status])).toEqual([
      ['global_step1000', 'INCOMPLETE'],
      ['global_step2000', 'INCOMPLETE'],
      ['global_step3000', 'CORRUPT'],
    ]);
    expect(byName(found, 'global_step1000').reasons[0]).toBe('bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt has no zip end-of-central-directory record: truncated or still being written');
    expect(byName(found, 'global_step3000').reasons).toEqual(['`latest` names tag global_step3000 but global_step3000/ does not exist']);
  });

  it('a tag newer than `latest` whose partitions are all there is complete', async () => {
    const root = await copyFixture('deepspeed_zero2');
    await writeFile(join(root, 'save_dir', 'latest'), 'global_step200');
    const found = await scanCheckpoints(join(root, 'save_dir'));
    const c = byName(found, 'global_step300');
    expect(c.status).toBe('COMPLETE');
    expect(c.notes).toContain('newer than `latest` (global_step200): rank 0 had not updated it yet');
  });
});
