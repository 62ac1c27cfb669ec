// `gantry admin ...`: operator settings of the control plane; for now the scheduling policy
// (`config get`, `config set -f FILE`). The server validates a policy; the CLI sends the file's
// text untouched, so YAML comments and anchors are the server's to read.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { GantryError, status, type GantryClient, type SchedulingConfig } from '@gantry/sdk';
import { UsageError } from '../errors.js';
import { GetClusterStatusResponse } from '@gantry/proto';
import { clusterStatusView } from '../format-health.js';
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

interface ConfigCommands {
  name: string;
  description: string;
  /** "scheduling policy", "health config": what get prints and set replaces. */
  what: string;
  /** The `-f` file's name in help: "the policy document". */
  document: string;
  /** Printed after a replace: "scheduling config replaced from FILE". */
  replaced: string;
  get(gantry: GantryClient): Promise<SchedulingConfig>;
  set(gantry: GantryClient, text: string): Promise<SchedulingConfig>;
}

/** `NAME get` and `NAME set -f FILE` for a config document the server validates and stores. */
function addConfigCommands(admin: Command, session: Session, c: ConfigCommands): void {
  const group = admin.command(c.name).description(c.description);
  group
    .command('get')
    .description(`print the ${c.what} in force, as indented JSON (whatever -o says)`)
    .action(async () => {
      const { config } = await c.get(session.gantry());
      session.printJson(config);
    });
  group
    .command('set')
    .description(`replace the ${c.what} with a YAML or JSON file; the server validates it and lists every problem`)
    .requiredOption('-f, --file <path>', `${c.document} (YAML or JSON)`)
    .action(async (o: { file: string }) => {
      const text = readConfigFile(o.file);
      let stored: SchedulingConfig;
      try {
        stored = await c.set(session.gantry(), text);
      } catch (err) {
        if (GantryError.is(err, status.INVALID_ARGUMENT)) throw new GantryError(err.code, oneLine(err.details), { cause: err, metadata: err.metadata });
        throw err;
      }
      // -o json: the stored document, defaults filled in (what `get` prints from now on).
      if (session.json) session.printJson(stored.config);
      else session.out(`${c.replaced} from ${o.file}`);
    });
}

/** Adds `admin` and its subcommands to `program` (via .command(), so they inherit its exit and output settings). */
export function addAdminCommands(program: Command, session: Session): void {
  const admin = program.command('admin').description('operator settings of the control plane');
  addConfigCommands(admin, session, {
    name: 'config', description: 'the scheduling policy: tenants, quotas, cohorts, fair share, preemption, backfill (docs/scheduling.md)',
    what: 'scheduling policy', document: 'the policy document', replaced: 'scheduling config replaced',
    get: (g) => g.getSchedulingConfig(), set: (g, text) => g.setSchedulingConfig(text),
  });
  admin
    .command('status')
    .description('the control plane: scheduler leader and epoch, every service instance and its version, NATS server and stream replicas, Redis role and replication lag')
    .action(async () => {
      const res = await session.gantry().getClusterStatus();
      if (session.json) session.printJson(GetClusterStatusResponse.toJSON(res));
      else session.out(clusterStatusView(res, session.now()));
    });
  addConfigCommands(admin, session, {
    name: 'health-config', description: 'the node health detector: thresholds, signal weights, XID policy (docs/health.md)',
    what: 'health config', document: 'the health config document', replaced: 'health config replaced',
    get: (g) => g.getHealthConfig(), set: (g, text) => g.setHealthConfig(text),
  });
}
