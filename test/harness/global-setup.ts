// Global setup of the e2e project: bundles of the working tree's services and CLI, built once
// per `vitest run` (a few seconds), so that the ~70 test stacks of a run start their processes
// from bundles (~0.5 CPU-s each) instead of compiling the TypeScript through tsx (~2 CPU-s).
// Built afresh for every run, into a folder of this run's own (engineers run tests side by side
// in one checkout), and named to the test workers through GANTRY_BUNDLE_DIR, which
// serviceCommand and cliCommand (deploy/local/services.ts) read: a stale bundle is never run.
// GANTRY_TEST_BUNDLES=off runs the sources under tsx instead.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundles } from '../../deploy/local/bundle.js';
import { BUNDLE_DIR_ENV, REPO_ROOT } from '../../deploy/local/services.js';

const ROOT = join(REPO_ROOT, '.build', 'test-bundles');

/** Folders of runs whose process is gone (killed before its teardown). */
function removeAbandoned(): void {
  let names: string[] = [];
  try { names = readdirSync(ROOT); } catch { return; }
  for (const name of names) {
    const pid = Number(/^run-(\d+)$/.exec(name)?.[1]);
    if (!pid) continue;
    try { process.kill(pid, 0); } catch { rmSync(join(ROOT, name), { recursive: true, force: true }); }
  }
}

export default async function setup(): Promise<(() => void) | undefined> {
  if (process.env.GANTRY_TEST_BUNDLES === 'off') {
    delete process.env[BUNDLE_DIR_ENV];
    return undefined;
  }
  removeAbandoned();
  const dir = join(ROOT, `run-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  await buildBundles(dir);
  process.env[BUNDLE_DIR_ENV] = dir;
  return () => {
    if (!process.env.GANTRY_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  };
}
