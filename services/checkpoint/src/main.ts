// The checkpoint service process: `node --import tsx services/checkpoint/src/main.ts`.
// startService validates the environment (exit 2 naming the bad variable), serves /metrics and
// runs the shutdown steps on SIGTERM/SIGINT.
import { startService } from '@gantry/service-kit';
import { checkpointEnv } from './config.js';
import { serveCheckpoints } from './server.js';

const ctx = await startService('checkpoint', checkpointEnv);
try {
  const { port } = await serveCheckpoints(ctx);
  ctx.log.info({ port, metricsPort: ctx.metricsPort }, 'checkpoint service listening');
} catch (err) {
  ctx.log.fatal({ err }, 'checkpoint service failed to start');
  await ctx.lifecycle.shutdown();
  process.exit(1);
}
