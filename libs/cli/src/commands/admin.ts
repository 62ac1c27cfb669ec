// `gantry admin ...`: operator settings of the control plane; for now the scheduling policy
// (`config get`, `config set -f FILE`). The server validates a policy; the CLI sends the file's
// text untouched, so YAML comments and anchors are the server's to read.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { GantryError, status, type SchedulingConfig } from '@gantry/sdk';
import { UsageError } from '../errors.js';
import type { Session } from '../session.js';

/**
 * The server lists every problem of a rejected policy on its own line
 * ("config_json: invalid scheduling config:\n  a: ...\n  b: ..."); the CLI prints errors as one
 * line, so they are joined: "config_json: invalid scheduling config: a: ...; b: ...".
 */
export function oneLine(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .reduce((acc, l) => (acc ? `${acc}${acc.endsWith(':') ? ' ' : '; '}${l}` : l), '');
}

function readConfigFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read config file: ${(err as Error).message}`);
  }
}

/** Adds `admin` and its subcommands to `program` (via .command(), so they inherit its exit and output settings). */
export function addAdminCommands(program: Command, session: Session): void {
  const admin = program.command('admin').description('operator settings of the control plane');
  const config = admin.command('config').description('the scheduling policy: tenants, quotas, cohorts, fair share, preemption, backfill (docs/scheduling.md)');

  config
    .command('get')
    .description('print the scheduling policy in force, as indented JSON (whatever -o says)')
    .action(async () => {
      const { config: policy } = await session.gantry().getSchedulingConfig();
      session.printJson(policy);
    });

  config
    .command('set')
    .description('replace the scheduling policy with a YAML or JSON file; the server validates it and lists every problem')
    .requiredOption('-f, --file <path>', 'the policy document (YAML or JSON)')
    .action(async (o: { file: string }) => {
      const text = readConfigFile(o.file);
      let stored: SchedulingConfig;
      try {
        stored = await session.gantry().setSchedulingConfig(text);
      } catch (err) {
        if (GantryError.is(err, status.INVALID_ARGUMENT)) throw new GantryError(err.code, oneLine(err.details), { cause: err, metadata: err.metadata });
        throw err;
      }
      // -o json: the stored policy, defaults filled in (what `config get` prints from now on).
      if (session.json) session.printJson(stored.config);
      else session.out(`scheduling config replaced from ${o.file}`);
    });

  const health = admin.command('health-config').description('the node health detector: thresholds, signal weights, XID policy (docs/health.md)');

  health
    .command('get')
    .description('print the health config in force, as indented JSON (whatever -o says)')
    .action(async () => {
      const { config: stored } = await session.gantry().getHealthConfig();
      session.printJson(stored);
    });

  health
    .command('set')
    .description('replace the health config with a YAML or JSON file (any subset; defaults fill the rest); the server validates it and lists every problem')
    .requiredOption('-f, --file <path>', 'the health config document (YAML or JSON)')
    .action(async (o: { file: string }) => {
      const text = readConfigFile(o.file);
      let stored: SchedulingConfig;
      try {
        stored = await session.gantry().setHealthConfig(text);
      } catch (err) {
        if (GantryError.is(err, status.INVALID_ARGUMENT)) throw new GantryError(err.code, oneLine(err.details), { cause: err, metadata: err.metadata });
        throw err;
      }
      if (session.json) session.printJson(stored.config);
      else session.out(`health config replaced from ${o.file}`);
    });
}
