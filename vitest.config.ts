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
          include: ['libs/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts'],
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
          // Each file starts its own stack. Three at a time on a 2-core machine since the stacks
          // start from bundles: clean-clone .ci/run of the same tree, 722 s of tests with two
          // (the machine 66 % busy) and 636 s with three (75 %), every test passing. Under tsx,
          // starting a stack was mostly CPU and three made timing-sensitive tests time out.
          maxWorkers: 3,
          fileParallelism: true,
        },
      },
    ],
  },
});
