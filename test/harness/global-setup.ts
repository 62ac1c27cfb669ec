// Global setup of the e2e project: bundles of the working tree's services and CLI, built once
// per `vitest run` (a few seconds), so that the test stacks start their processes from bundles
// (~0.9 CPU-s each) instead of loading the TypeScript through tsx (~3 CPU-s). Built afresh for
// every run (and before every rerun in watch mode), into a folder of this run's own (engineers
// run tests side by side in one checkout), and named to the test workers through
// GANTRY_BUNDLE_DIR, which serviceCommand and cliCommand (deploy/local/services.ts) read: a
// stale bundle is never run. GANTRY_TEST_BUNDLES=off runs the sources under tsx instead.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
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

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  if (process.env.GANTRY_TEST_BUNDLES === 'off') {
    delete process.env[BUNDLE_DIR_ENV];
    return undefined;
  }
  removeAbandoned();
  const dir = join(ROOT, `run-${process.pid}`);
  const rebuild = async () => {
    rmSync(dir, { recursive: true, force: true });
    await buildBundles(dir);
  };
  await rebuild();
  // Watch mode: the sources may have changed since (the previous run's stacks are stopped by now).
  project.onTestsRerun(rebuild);
  process.env[BUNDLE_DIR_ENV] = dir;
  return () => {
    if (!process.env.GANTRY_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  };
}
