// Shared pieces of the end-to-end tests: a fresh stack per test, and waiting for a job.
import { afterEach } from 'vitest';
import { GantryClient, type ClientOptions } from '@gantry/sdk';
import { JobState, jobStateName, type Job } from '@gantry/proto';
import { TestStack, eventually, type StackOptions } from './stack.js';

/** Registers teardown and returns a starter: each test gets its own stack and client. */
export function stackPerTest(clientOptions: ClientOptions = {}): (opts?: StackOptions) => Promise<{ stack: TestStack; client: GantryClient }> {
  let stack: TestStack | undefined;
  let client: GantryClient | undefined;
  afterEach(async (ctx) => {
    // A failed test shows what the control plane logged about it (CI keeps nothing else).
    if (ctx.task.result?.state === 'fail' && stack) printLogTails(stack);
    client?.close();
    await stack?.stop();
    stack = client = undefined;
  });
  return async (opts) => {
    stack = await new TestStack(opts).start();
    client = new GantryClient({ address: stack.gatewayAddr, timeoutMs: 5_000, retry: { maxAttempts: 20 }, ...clientOptions });
    return { stack, client };
  };
}

/** The last lines of the scheduler and checkpoint logs, lines about jobs and placement only. */
function printLogTails(stack: TestStack): void {
  for (const name of ['scheduler-0', 'checkpoint']) {
    const lines = stack.logsOf(name).split('\n').filter((l) => /"job"|checkpoint|resume|placed|recover/i.test(l));
    console.error(`--- ${name} (last ${Math.min(lines.length, 40)} relevant lines)\n${lines.slice(-40).join('\n')}`);
  }
}

/** Waits until the job is in one of `states` (or satisfies `pred`), and returns it. */
export function waitForJob(client: GantryClient, id: string, want: JobState[] | ((j: Job) => boolean), timeoutMs = 30_000): Promise<Job> {
  const pred = Array.isArray(want) ? (j: Job) => want.includes(j.state) : want;
  const what = Array.isArray(want) ? `job ${id} in ${want.map(jobStateName).join('|')}` : `job ${id} to reach the expected state`;
  return eventually(what, async () => {
    const j = await client.getJob(id);
    return pred(j) ? j : undefined;
  }, timeoutMs);
}
