// The common start-up of a Gantry process: validated config, logger, metrics endpoint and
// graceful shutdown. A config error prints one line naming the variable and exits 2.
import type { z } from 'zod';
import type { Registry } from 'prom-client';
import { ConfigError, loadConfig, commonEnv, redisTarget } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { createRegistry, serveMetrics } from './metrics.js';
import { Lifecycle } from './lifecycle.js';
import { internalTls, type InternalTls } from './internal-tls.js';

export interface ServiceContext<C> {
  config: C;
  log: Logger;
  metrics: Registry;
  lifecycle: Lifecycle;
  metricsPort: number;
  /** Internal mutual TLS (INTERNAL_TLS_*), validated at start; undefined: plaintext. */
  internalTls?: InternalTls | undefined;
}

type Common = typeof commonEnv;

export async function startService<S extends z.ZodRawShape>(
  name: string,
  shape: S,
): Promise<ServiceContext<z.infer<z.ZodObject<Common & S>>>> {
  let config: z.infer<z.ZodObject<Common & S>>;
  let tls: InternalTls | undefined;
  try {
    config = loadConfig({ ...commonEnv, ...shape } as Common & S);
    redisTarget(config as unknown as z.infer<z.ZodObject<Common>>); // Sentinel settings come in pairs
    tls = internalTls(config as unknown as z.infer<z.ZodObject<Common>>);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const common = config as unknown as z.infer<z.ZodObject<Common>>;
  const log = createLogger(name, common.LOG_LEVEL);
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  const metrics = createRegistry(name);
  const lifecycle = new Lifecycle(log);
  lifecycle.installSignalHandlers();
  const { server, port } = await serveMetrics(metrics, common.BIND_HOST, common.METRICS_PORT);
  lifecycle.onShutdown('metrics', () => new Promise((r) => server.close(r)));
  log.info({ metricsPort: port, internalTls: tls ? 'mutual' : 'off' }, 'metrics listening');
  return { config, log, metrics, lifecycle, metricsPort: port, internalTls: tls };
}
