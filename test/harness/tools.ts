// The operator's tools as the e2e tests run them: the `gantry` CLI as a separate process
// against a stack's gateway, and `gantry-agent sim ...` against a simulated agent's state.
import { execFile } from 'node:child_process';
import { REPO_ROOT, cliCommand } from '../../deploy/local/services.js';
import { simProgram } from '../../services/node-agent/src/sim-cli.js';
import type { TestStack } from './stack.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `gantry --addr <gateway> ...args` (its bin, or this run's bundle of it: cliCommand) and
 * resolves with its exit code and output.
 */
export function gantry(stack: TestStack, ...args: string[]): Promise<CliResult> {
  const cli = cliCommand();
  return new Promise((resolve) => {
    execFile(cli.command, [...cli.args, '--addr', stack.gatewayAddr, ...args], { cwd: REPO_ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** `gantry-agent sim ...args` on a simulated agent of the stack: its index, or its node name ("node-2"). */
export async function sim(stack: TestStack, node: number | string, ...args: string[]): Promise<void> {
  const dir = stack.agentStateDir(typeof node === 'number' ? node : Number(node.split('-')[1]));
  await simProgram(() => dir, () => undefined).parseAsync(['sim', ...args, '--state-dir', dir], { from: 'user' });
}
