import { mkdir, writeFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCheckpoint, scanCheckpoints } from '../src/index.js';
import { FIXTURES, copyFixture, summary, tempDir } from './helpers.js';

async function markerTree(): Promise<string> {
  const root = await tempDir();
  for (const [name, done] of [['ckpt-100', true], ['ckpt-200', true], ['ckpt-300', false]] as const) {
    await mkdir(join(root, name));
    await writeFile(join(root, name, 'weights.bin'), 'x'.repeat(10));
    if (done) await writeFile(join(root, name, 'GANTRY_COMPLETE'), '');
  }
  return root;
}

describe('GANTRY_COMPLETE marker layout', () => {
  it('forced: a directory is COMPLETE when it holds GANTRY_COMPLETE, else INCOMPLETE; step from trailing digits', async () => {
    const found = await scanCheckpoints(await markerTree(), { format: 'marker' });
    expect(summary(found)).toEqual({ 'ckpt-100': 'COMPLETE', 'ckpt-200': 'COMPLETE', 'ckpt-300': 'INCOMPLETE' });
    expect(found.map((c) => [c.format, c.step])).toEqual([['marker', 100], ['marker', 200], ['marker', 300]]);
    expect(found[0]!.files.map((f) => f.path).sort()).toEqual(['GANTRY_COMPLETE', 'weights.bin']);
    expect(found[2]!.reasons[0]).toMatch(/no GANTRY_COMPLETE/);
  });

  it('auto: directories with the marker that no framework layout claims are found; others are not', async () => {
    const found = await scanCheckpoints(await markerTree());
    expect(summary(found)).toEqual({ 'ckpt-100': 'COMPLETE', 'ckpt-200': 'COMPLETE' });
  });

  it('auto: a framework layout keeps its own verdict (a DCP directory missing a storage file stays CORRUPT despite a marker)', async () => {
    const root = await copyFixture('pytorch_dcp');
    const dir = join(root, 'ckpt');
    await writeFile(join(dir, 'GANTRY_COMPLETE'), '');
    const { rm, readdir } = await import('node:fs/promises');
    const distcp = (await readdir(dir)).find((f) => f.endsWith('.distcp'))!;
    await rm(join(dir, distcp));
    const [c] = (await scanCheckpoints(root)).filter((x) => x.name === 'ckpt');
    expect([c!.format, c!.status]).toEqual(['dcp', 'CORRUPT']);
  });

  it('checkCheckpoint guesses marker for a plain directory with the file, and a symlinked marker dir outside is not followed', async () => {
    const root = await markerTree();
    expect((await checkCheckpoint(join(root, 'ckpt-100'))).format).toBe('marker');
    expect((await checkCheckpoint(join(root, 'ckpt-100'))).status).toBe('COMPLETE');
    await symlink(join(FIXTURES, 'pytorch_dcp'), join(root, 'ckpt-400'));
    const found = await scanCheckpoints(root, { format: 'marker' });
    expect(found.find((c) => c.name === 'ckpt-400')?.status).not.toBe('COMPLETE');
  });
});
