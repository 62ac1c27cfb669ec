// Entry point of the `gantry` binary (bin/gantry.js, or `pnpm gantry`).
import { main } from './cli.js';

// `gantry job logs ID | head` closes our stdout early; that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
