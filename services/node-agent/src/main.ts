// gantry-agent: the node agent process.
import { ConfigError, connectNats, createLogger, createRegistry, serveMetrics, Lifecycle } from '@gantry/service-kit';
import { loadAgentConfig } from './config.js';
import { fingerprintGpus } from './fingerprint.js';
import { NodeAgent } from './agent.js';

let cfg;
try {
  cfg = loadAgentConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`gantry-agent: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
const log = createLogger('node-agent', cfg.logLevel);
const lifecycle = new Lifecycle(log);
lifecycle.installSignalHandlers();
const registry = createRegistry('node-agent');
const metrics = await serveMetrics(registry, cfg.bindHost, cfg.metricsPort);
lifecycle.onShutdown('metrics', () => new Promise((r) => metrics.server.close(r)));
const { backend, gpus } = fingerprintGpus(cfg);
log.info({ node: cfg.node, backend, gpus: gpus.length, model: gpus[0]?.model }, 'fingerprinted host');
const nc = await connectNats(cfg.natsUrl, `agent ${cfg.node}`, log);
lifecycle.onShutdown('nats', () => nc.drain());
const agent = new NodeAgent(cfg, nc, gpus, backend, log);
lifecycle.onShutdown('agent', () => agent.stop());
await agent.start();
