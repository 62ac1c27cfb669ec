import { cp, mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import type { FoundCheckpoint } from '../src/index.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'layouts');

const made: string[] = [];
afterEach(async () => {
  for (const d of made.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A private copy of fixtures/layouts/<name> to damage; removed after the test. */
export async function copyFixture(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-layouts-'));
  made.push(dir);
  await cp(join(FIXTURES, name), join(dir, name), { recursive: true, verbatimSymlinks: true });
  return join(dir, name);
}

/** A fresh empty temporary directory, removed after the test. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-layouts-'));
  made.push(dir);
  return dir;
}

/** Cuts a file to half its size (a write that stopped midway). */
export async function halve(path: string, size: number): Promise<void> {
  await truncate(path, Math.floor(size / 2));
}

/** name -> [status, reasons] for compact assertions. */
export function summary(found: FoundCheckpoint[]): Record<string, string> {
  return Object.fromEntries(found.map((c) => [c.name, c.status]));
}

export function byName(found: FoundCheckpoint[], name: string): FoundCheckpoint {
  const c = found.find((x) => x.name === name);
  if (!c) throw new Error(`no checkpoint ${name} in ${found.map((x) => x.name).join(', ')}`);
  return c;
}
