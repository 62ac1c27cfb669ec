import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The longest e2e files, longest first (minutes each on a 2-core machine). Vitest runs files
 * it has no timings for largest first, which can leave one of these to start last and run
 * alone at the end of the suite; started first, the short files fill the workers around them.
 */
const LONGEST_E2E_FILES = [
  'test/e2e/docs.test.ts',
  'test/e2e/recovery.test.ts',
  'test/e2e/scheduling.test.ts',
  'test/e2e/health.test.ts',
  'test/e2e/checkpoints.test.ts',
  'test/e2e/faults.test.ts',
  'test/e2e/status-page.test.ts',
  'test/e2e/launch.test.ts',
  'test/e2e/packages.test.ts',
];

class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (s: TestSpecification) => {
      const i = LONGEST_E2E_FILES.findIndex((f) => s.moduleId.endsWith(`/${f}`));
      return i < 0 ? LONGEST_E2E_FILES.length : i;
    };
    // Stable: the projects' order (unit before e2e) and every other file's order are kept.
    return sorted.map((s, i) => ({ s, i })).sort((a, b) => {
      if (a.s.project.name !== b.s.project.name) return a.i - b.i;
      return rank(a.s) - rank(b.s) || a.i - b.i;
    }).map(({ s }) => s);
  }
}

// Two projects: fast unit tests of pure logic, and end-to-end tests that start real
// nats-server, redis-server and Gantry services (test/harness). `pnpm test` runs both.
export default defineConfig({
  test: {
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['libs/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/bench/**/*.test.ts'],
          sequence: { groupOrder: 0 },
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // Bundles of the services and the CLI, built from the working tree for this run: the
          // stacks start their processes from them instead of through tsx (test/harness/global-setup.ts).
          globalSetup: ['test/harness/global-setup.ts'],
          // After the unit tests, so the two never compete for the machine's cores.
          sequence: { groupOrder: 1 },
          testTimeout: 90_000,
          hookTimeout: 60_000,
          // Each file starts its own stack; two at a time on a 2-core machine. With the stacks
          // started from bundles, clean-clone .ci/run: 722 s of tests with two, every test
          // passing; with three 636 s and 654 s, but the second run lost a test (a restarted
          // agent not ready within 45 s, checkpoints.test.ts), as three did under tsx.
          maxWorkers: 2,
          fileParallelism: true,
        },
      },
    ],
  },
});
