import { cp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCheckpoint, scanCheckpoints } from '../src/index.js';
import { FIXTURES, copyFixture, halve } from './helpers.js';

describe('Hugging Face Trainer', () => {
  it('complete when trainer_state.json (written last) is present; tmp-checkpoint-* ignored; ordered numerically', async () => {
    const found = await scanCheckpoints(join(FIXTURES, 'hf_trainer', 'output_dir'));
    expect(found.map((c) => [c.name, c.step, c.status])).toEqual([
      ['checkpoint-500', 500, 'COMPLETE'],
      ['checkpoint-1000', 1000, 'COMPLETE'],
      ['checkpoint-1500', 1500, 'INCOMPLETE'],
    ]);
    expect(found[1]!.files.map((f) => f.path)).toContain('model-00002-of-00002.safetensors');
  });

  it('in progress: no trainer_state.json yet', async () => {
    const c = await checkCheckpoint(join(FIXTURES, 'hf_trainer', 'output_dir', 'checkpoint-1500'));
    expect(c.format).toBe('hf');
    expect(c.status).toBe('INCOMPLETE');
    expect(c.reasons).toEqual(['no trainer_state.json (the Trainer writes it last): save in progress or crashed']);
  });

  it('corrupt: a weight shard named by the index removed, another truncated', async () => {
    const root = await copyFixture('hf_trainer');
    const ck = join(root, 'output_dir', 'checkpoint-1000');
    await rm(join(ck, 'model-00001-of-00002.safetensors'));
    await halve(join(ck, 'model-00002-of-00002.safetensors'), (await stat(join(ck, 'model-00002-of-00002.safetensors'))).size);
    const c = await checkCheckpoint(ck, 'hf');
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual([
      'model-00001-of-00002.safetensors is missing',
      expect.stringMatching(/^model-00002-of-00002\.safetensors is \d+ bytes but (its header describes \d+|its safetensors header alone needs \d+): truncated$/),
    ]);
  });

  it('corrupt: optimizer.pt truncated, trainer_state.json garbage', async () => {
    const root = await copyFixture('hf_trainer');
    const ck = join(root, 'output_dir', 'checkpoint-500');
    await halve(join(ck, 'optimizer.pt'), (await stat(join(ck, 'optimizer.pt'))).size);
    await writeFile(join(ck, 'trainer_state.json'), '{\n  "best_global_step": nu');
    const c = await checkCheckpoint(ck);
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual([
      'trainer_state.json is not valid JSON (26 bytes; cut short while being written?)',
      'optimizer.pt has no zip end-of-central-directory record: truncated or still being written',
    ]);
  });
});

describe('Hugging Face Trainer: other files', () => {
  it('a .bin that is not a torch.save file is noted, not failed', async () => {
    const root = await copyFixture('hf_trainer');
    const ck = join(root, 'output_dir', 'checkpoint-500');
    await writeFile(join(ck, 'vocab.bin'), 'plain data');
    const c = await checkCheckpoint(ck);
    expect(c.status).toBe('COMPLETE');
    expect(c.notes).toContain('vocab.bin is not a torch.save file; not checked');
  });
});

describe('Hugging Face Trainer with FSDP', () => {
  it('checks DCP directories kept inside checkpoint-N (e.g. pytorch_model_fsdp_0/)', async () => {
    const root = await copyFixture('hf_trainer');
    const ck = join(root, 'output_dir', 'checkpoint-500');
    await cp(join(FIXTURES, 'pytorch_dcp', 'ckpt'), join(ck, 'pytorch_model_fsdp_0'), { recursive: true });
    expect((await checkCheckpoint(ck)).status).toBe('COMPLETE');
    await rm(join(ck, 'pytorch_model_fsdp_0', '__1_0.distcp'));
    const c = await checkCheckpoint(ck);
    expect([c.status, c.reasons]).toEqual(['CORRUPT', ['pytorch_model_fsdp_0/: __1_0.distcp is missing (named by .metadata storage_data)']]);
  });
});

describe('Hugging Face Trainer with DeepSpeed', () => {
  it('checks the DeepSpeed checkpoint kept inside checkpoint-N (latest + global_stepN/)', async () => {
    const root = await copyFixture('hf_trainer');
    const ds = await copyFixture('deepspeed_zero2');
    const ck = join(root, 'output_dir', 'checkpoint-500');
    await cp(join(ds, 'save_dir'), ck, { recursive: true });
    await rm(join(ck, 'optimizer.pt'));
    let c = await checkCheckpoint(ck);
    expect([c.status, c.variant]).toEqual(['COMPLETE', 'deepspeed']);
    await rm(join(ck, 'global_step300', 'zero_pp_rank_1_mp_rank_00_optim_states.pt'));
    c = await checkCheckpoint(ck);
    expect(c.status).toBe('CORRUPT');
    expect(c.reasons).toEqual(['global_step300/: expected 2 *_optim_states.pt (partition_count recorded inside them) for mp_rank_00, found 1; missing DP rank(s) 1']);
  });
});
