import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCheckpoint, scanCheckpoints } from '../src/index.js';
import { FIXTURES, byName, copyFixture, summary, tempDir } from './helpers.js';

describe('scanCheckpoints: detection and options', () => {
  it.each([
    ['pytorch_dcp', 'dcp'],
    ['megatron/save', 'megatron'],
    ['megatron_legacy/save', 'megatron'],
    ['deepspeed/save_dir', 'deepspeed'],
    ['hf_trainer/output_dir', 'hf'],
    ['torchtitan/dump_folder', 'torchtitan'],
  ])('auto detects %s as %s', async (dir, format) => {
    const found = await scanCheckpoints(join(FIXTURES, dir));
    expect(found.length).toBeGreaterThan(0);
    expect(new Set(found.map((c) => c.format))).toEqual(new Set([format]));
  });

  it('an explicit format forces one layout', async () => {
    expect(await scanCheckpoints(join(FIXTURES, 'megatron', 'save'), { format: 'hf' })).toEqual([]);
    // Megatron's iteration directories read as plain DCP: no tracker, no metadata.json rules
    const asDcp = await scanCheckpoints(join(FIXTURES, 'megatron', 'save'), { format: 'dcp' });
    expect(summary(asDcp)).toEqual({ iter_0001000: 'COMPLETE', iter_0002000: 'COMPLETE', iter_0003000: 'INCOMPLETE' });
    const one = await checkCheckpoint(join(FIXTURES, 'megatron', 'save', 'iter_0003000'), 'dcp');
    expect([one.format, one.status]).toEqual(['dcp', 'INCOMPLETE']);
    await expect(scanCheckpoints(FIXTURES, { format: 'lightning' as never })).rejects.toThrow(TypeError);
  });

  it('a missing or non-directory root gives [] and an empty one too', async () => {
    expect(await scanCheckpoints(join(FIXTURES, 'does-not-exist'))).toEqual([]);
    expect(await scanCheckpoints(join(FIXTURES, 'deepspeed', 'save_dir', 'latest'))).toEqual([]);
    expect(await scanCheckpoints(await tempDir())).toEqual([]);
  });

  it('sha256 of every file on request, streamed', async () => {
    const [c] = await scanCheckpoints(join(FIXTURES, 'pytorch_dcp'), { checksums: true });
    expect(c!.files.length).toBe(4);
    for (const f of c!.files) expect(f.sha256).toBe(createHash('sha256').update(await readFile(join(c!.path, f.path))).digest('hex'));
  });

  it('orders by step numerically, not lexically, across unpadded names', async () => {
    const root = await tempDir();
    for (const n of [10, 9, 100]) {
      await mkdir(join(root, `checkpoint-${n}`));
      await writeFile(join(root, `checkpoint-${n}`, 'trainer_state.json'), JSON.stringify({ global_step: n }));
    }
    expect((await scanCheckpoints(root)).map((c) => c.step)).toEqual([9, 10, 100]);
  });

  it('never throws on a directory of garbage', async () => {
    const root = await tempDir();
    await writeFile(join(root, 'latest_checkpointed_iteration.txt'), '\x00\xff');
    await writeFile(join(root, 'latest'), '../../etc');
    await mkdir(join(root, 'iter_x'));
    await writeFile(join(root, 'global_step5'), 'a file, not a directory');
    await mkdir(join(root, 'checkpoint-3'));
    await writeFile(join(root, 'checkpoint-3', 'trainer_state.json'), '[]');
    await writeFile(join(root, 'checkpoint-3', 'model.safetensors.index.json'), '{"weight_map": {"a": "../../../etc/passwd"}}');
    await writeFile(join(root, 'checkpoint-3', 'model.safetensors'), Buffer.from('ffffffffffffff7f', 'hex'));
    await mkdir(join(root, 'step-1', 'mp_rank_00'), { recursive: true });
    await writeFile(join(root, 'step-1', '.metadata'), '');
    const found = await scanCheckpoints(root);
    expect(summary(found)).toEqual({ 'checkpoint-3': 'CORRUPT', 'step-1': 'CORRUPT' });
    expect(byName(found, 'checkpoint-3').reasons).toEqual([
      'trainer_state.json has no numeric global_step',
      'path "../../../etc/passwd" leaves its checkpoint directory',
      expect.stringMatching(/^model\.safetensors: safetensors header of \d+ bytes is over the limit$/),
    ]);
    expect(byName(found, 'step-1').reasons).toEqual(['.metadata is not a readable pickle (pickle ends without STOP (truncated))']);
  });
});

describe('symlinks', () => {
  it('never follows a checkpoint directory or storage file that points outside the root', async () => {
    const outside = await copyFixture('pytorch_dcp');
    const root = await copyFixture('megatron');
    const save = join(root, 'save');
    // iter_0004000 -> a complete DCP checkpoint outside the scanned directory
    await symlink(join(outside, 'ckpt'), join(save, 'iter_0004000'));
    await writeFile(join(save, 'latest_checkpointed_iteration.txt'), '4000');
    // a shard of iter_0002000 replaced by a link to a same-sized file outside
    await rename(join(save, 'iter_0002000', '__0_0.distcp'), join(outside, 'moved.distcp'));
    await symlink(join(outside, 'moved.distcp'), join(save, 'iter_0002000', '__0_0.distcp'));
    const found = await scanCheckpoints(save);
    const linked = byName(found, 'iter_0004000');
    expect([linked.status, linked.reasons, linked.files]).toEqual(['CORRUPT', ['iter_0004000 is a symlink to outside the scanned directory; not followed'], []]);
    expect(byName(found, 'iter_0002000').reasons).toEqual(['__0_0.distcp is a symlink to outside the scanned directory; not followed']);
    expect(byName(found, 'iter_0002000').notes).toContain('__0_0.distcp: symlink to outside the scanned directory, not followed');
  });

  it('follows links that stay inside the root (Megatron retention may symlink iteration directories)', async () => {
    const root = await copyFixture('megatron');
    const save = join(root, 'save');
    await mkdir(join(save, 'archive'));
    await rename(join(save, 'iter_0002000'), join(save, 'archive', 'iter_0002000'));
    await symlink(join(save, 'archive', 'iter_0002000'), join(save, 'iter_0002000'));
    const c = byName(await scanCheckpoints(save), 'iter_0002000');
    expect([c.status, c.latest, c.files.length]).toEqual(['COMPLETE', true, 6]);
  });

  it('survives a symlink loop', async () => {
    const root = await copyFixture('hf_trainer');
    const ck = join(root, 'output_dir', 'checkpoint-500');
    await symlink(ck, join(ck, 'loop'));
    await symlink(join(ck, 'self'), join(ck, 'self'));
    const c = byName(await scanCheckpoints(join(root, 'output_dir')), 'checkpoint-500');
    expect(c.status).toBe('COMPLETE');
    expect(c.notes).toContain('self: broken symlink');
  });
});

describe('fixtures follow the documented layouts', () => {
  // trees/*.tree.txt are copied from shared/data/checkpoints/examples; every path they list must exist.
  const MAP: Record<string, (p: string) => string[]> = {
    'pytorch_dcp.tree.txt': (p) => [join('pytorch_dcp', p)],
    'megatron.tree.txt': (p) => [join('megatron', p), join('megatron_legacy', p)],
    'deepspeed.tree.txt': (p) => [join('deepspeed', p)],
    'hf_trainer.tree.txt': (p) => [join('hf_trainer', p)],
    'torchtitan.tree.txt': (p) => [join('torchtitan', p)],
  };
  it.each(Object.keys(MAP))('%s', async (tree) => {
    const text = await readFile(join(FIXTURES, '..', 'trees', tree), 'utf8');
    const paths = text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split('\t')[0]!);
    expect(paths.length).toBeGreaterThan(3);
    for (const p of paths) {
      const options = MAP[tree]!(p.replace(/\/$/, ''));
      const ok = await Promise.all(options.map((o) => readdir(join(FIXTURES, o)).then(() => true, (e: NodeJS.ErrnoException) => e.code === 'ENOTDIR')));
      expect(ok.some(Boolean), `${p} listed in ${tree}`).toBe(true);
    }
    // content lines the trees quote
    expect((await readFile(join(FIXTURES, 'deepspeed', 'save_dir', 'latest'), 'utf8'))).toBe('global_step1000');
    expect((await readFile(join(FIXTURES, 'megatron', 'save', 'latest_checkpointed_iteration.txt'), 'utf8'))).toBe('2000');
  });
});
