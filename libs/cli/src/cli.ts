// The `gantry` command line as a function: main(argv, io) parses, runs one command, and returns
// the exit code instead of exiting, so tests run it in-process against any address.
//
// Exit codes: 0 success; 1 an error from the server, or a job that did not succeed (watch,
// submit --wait/--follow); 2 bad usage (commander's own errors, invalid flag values, an
// unreadable or invalid job file, an unreadable config file). Errors are one line on stderr,
// never a stack trace.
import { Command, CommanderError, Option } from 'commander';
import { ConfigFileError, GantryError, status } from '@gantry/sdk';
import pkg from '../package.json' with { type: 'json' };
import { addAdminCommands } from './commands/admin.js';
import { addAuthCommands } from './commands/auth.js';
import { addJobCommands } from './commands/job.js';
import { addCheckpointCommands } from './commands/ckpt.js';
import { addNodeCommands } from './commands/node.js';
import { addHealthCommand } from './commands/health.js';
import { addStorageCommands } from './commands/storage.js';
import { addReportCommand } from './commands/report.js';
import { UsageError } from './errors.js';
import { flagParser, parseDuration } from './parse.js';
import { Session, type GlobalOptions, type Io } from './session.js';

export type { Io, Output } from './session.js';

export function buildProgram(session: Session): Command {
  const program = new Command('gantry')
    .description('Gantry: run and inspect jobs on a GPU cluster')
    .version(pkg.version)
    // Set before adding commands: subcommands made with .command() inherit both.
    .exitOverride()
    .configureOutput({
      writeOut: (s) => session.io.stdout.write(s),
      writeErr: (s) => session.io.stderr.write(s),
      // One line: "gantry: unknown command 'jbo' (Did you mean job?)".
      outputError: (s, write) => write(s.replace(/^error: /, 'gantry: ').replace(/\n(?=.)/g, ' ')),
    })
    .option('--addr <host:port>', 'gateway address (default: $GANTRY_ADDR, else 127.0.0.1:7070)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--timeout <duration>', 'deadline of each request, e.g. 5s (default 10s)', flagParser(parseDuration))
    .option('--token <token>', 'bearer token (default: $GANTRY_TOKEN, else the config file ~/.config/gantry/config.yaml)')
    .option('--tls', 'connect with TLS, trusting the system roots')
    .option('--ca <file>', 'TLS: PEM file of the roots to trust (implies --tls)')
    .option('--cert <file>', 'TLS: client certificate PEM file (implies --tls)')
    .option('--key <file>', 'TLS: client key PEM file (implies --tls)');
  addJobCommands(program, session);
  addNodeCommands(program, session);
  addHealthCommand(program, session);
  addStorageCommands(program, session);
  addCheckpointCommands(program, session);
  addAdminCommands(program, session);
  addReportCommand(program, session);
  addAuthCommands(program, session);
  return program;
}

const processIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

/** Runs `gantry <argv...>` (argv without the node and script paths); resolves to the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  // The session reads the global options lazily, once commander has parsed them.
  const session: Session = new Session(io, () => program.opts<GlobalOptions>());
  const program: Command = buildProgram(session);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return session.exitCode;
  } catch (err) {
    return report(err, session);
  } finally {
    session.close();
  }
}

function report(err: unknown, session: Session): number {
  // Commander has already printed its message (or the help); --help and --version exit 0.
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  const line = (msg: string) => session.io.stderr.write(`gantry: ${msg.split('\n')[0]}\n`);
  if (err instanceof UsageError || err instanceof ConfigFileError) {
    line(err.message);
    return 2;
  }
  // GantryError's message is "CODE: details", e.g. "NOT_FOUND: job j-123 not found".
  // Only a gateway call has an address to name (ckpt and storage talk to the checkpoint service).
  if (GantryError.is(err, status.UNAVAILABLE) && session.address) line(`${err.message} (gateway ${session.address})`);
  else line(err instanceof Error ? err.message : String(err));
  return 1;
}
