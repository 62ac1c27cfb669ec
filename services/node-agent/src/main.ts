// gantry-agent: the node agent process; `gantry-agent sim inject ...` talks to a running one.
import { jetstream } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { agentInboxPrefix } from '@gantry/bus';
import { CommanderError } from 'commander';
// Subpath imports keep the gRPC server stack (proto-loader, reflection) out of the agent: it
// has no inbound port, and those modules alone cost tens of MB of its memory.
import { ConfigError } from '@gantry/service-kit/config';
import { connectNats } from '@gantry/service-kit/connections';
import { createLogger } from '@gantry/service-kit/logger';
import { createRegistry, serveMetrics } from '@gantry/service-kit/metrics';
import { Lifecycle } from '@gantry/service-kit/lifecycle';
import { loadAgentConfig, type AgentConfig } from './config.js';
import { createBackend, toGpuDevices } from './backend.js';
import { InventoryWatch } from './inventory-watch.js';
import { NodeAgent } from './agent.js';
import { SpawnHelper } from './runner/spawn-helper.js';
import { HostTelemetry } from './host-telemetry.js';
import { HostReporter } from './reporting/host-reporter.js';
import { ReportBuffer } from './reporting/report-buffer.js';
import { simProgram } from './sim-cli.js';
import { join } from 'node:path';

function config(opts: { commandKey?: boolean } = {}): AgentConfig {
  try {
    return loadAgentConfig(process.env, opts);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gantry-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** The rank spawner when one is configured and starts; else the agent forks ranks itself (said once). */
async function startSpawner(path: string | undefined, log: Logger): Promise<SpawnHelper | undefined> {
  if (path === 'off') return undefined;
  if (!path) {
    log.info('no rank spawner (gantry-spawn, pnpm build:spawn): the agent forks the ranks itself');
    return undefined;
  }
  try {
    const spawner = await SpawnHelper.start(path, log);
    log.info({ spawner: path, pid: spawner.pid }, 'rank spawner started');
    return spawner;
  } catch (err) {
    log.error({ err: (err as Error).message }, 'rank spawner did not start: the agent forks the ranks itself');
    return undefined;
  }
}

if (process.argv[2] === 'sim') {
  try {
    await simProgram(() => config({ commandKey: false }).stateDir, (m) => process.stdout.write(m)).parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) process.exit(0);
    process.stderr.write(`gantry-agent: ${(err as Error).message.replace(/^error: /, '')}\n`);
    process.exit(2);
  }
} else {
  const cfg = config();
  const log = createLogger('node-agent', cfg.logLevel);
  // The agent must outlive a failed background step (a full disk, a NATS hiccup): log, go on.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  const lifecycle = new Lifecycle(log);
  lifecycle.installSignalHandlers();
  const registry = createRegistry('node-agent');
  const metrics = await serveMetrics(registry, cfg.bindHost, cfg.metricsPort);
  lifecycle.onShutdown('metrics', () => new Promise((r) => metrics.server.close(r)));
  const backend = await createBackend(cfg);
  // Registered before the telemetry that reads it, so it closes after that has stopped (closers
  // run in reverse): a cycle after close would start the nvidia-smi loop again. Without it the
  // loop outlived the agent (a loop whose reader is gone only ends when a write fails).
  lifecycle.onShutdown('device', () => backend.close?.());
  const inventory = await backend.fingerprint();
  const gpus = toGpuDevices(inventory);
  log.info({ node: cfg.node, backend: backend.kind, gpus: gpus.length, model: gpus[0]?.model, metricsPort: metrics.port }, 'fingerprinted host');
  // Replies to this agent's requests come to its own inbox prefix: its NATS user may read no other.
  const nc = await connectNats(cfg.natsUrl, `agent ${cfg.node}`, log, cfg.natsCredsFile, { inboxPrefix: agentInboxPrefix(cfg.node) });
  lifecycle.onShutdown('nats', () => nc.drain());
  const buffer = new ReportBuffer(join(cfg.stateDir, 'reports'), { maxBytes: cfg.reportBufferBytes });
  const spawner = await startSpawner(cfg.spawnHelper, log);
  const agent: NodeAgent = new NodeAgent(cfg, nc, gpus, backend.kind, log, () => void reporter.drain(), registry, spawner);
  const reporter = new HostReporter(cfg.node, jetstream(nc), buffer, log, agent);
  lifecycle.onShutdown('agent', () => agent.stop());
  const telemetry = new HostTelemetry(cfg.node, backend, reporter, buffer, cfg.telemetryIntervalMs, cfg.stateDir, log, registry);
  lifecycle.onShutdown('telemetry', () => telemetry.stop());
  telemetry.setInventory(inventory);
  // Fingerprinted again periodically: a GPU that falls off the bus leaves the registration.
  // Not awaited: while no scheduler answers, the next fingerprints go on (each registration
  // sends the newest list).
  const inventoryWatch = new InventoryWatch(backend, inventory, cfg.inventoryIntervalMs, (change) => {
    telemetry.setInventory(change.inventory);
    void agent.setGpus(toGpuDevices(change.inventory));
  }, log);
  lifecycle.onShutdown('inventory', () => inventoryWatch.stop());
  await agent.start();
  // Registered: what the previous process buffered goes out now, not at the first new report.
  void reporter.drain();
  telemetry.start();
  inventoryWatch.start();
}
