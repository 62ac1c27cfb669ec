// Wires the checkpoint service together: Redis, the store, the metrics and the gRPC server,
// each registered with the lifecycle so shutdown stops taking calls before closing Redis.
// `serveCheckpoints` runs inside any ServiceContext (main.ts gets one from startService);
// `startCheckpointService` builds its own, without signal handlers or process.exit, so tests
// and embedders can run several in one process.
import { hostname } from 'node:os';
import {
  GANTRY_VERSION,
  connectNats,
  connectRedis,
  redisTarget,
  createLogger,
  createRegistry,
  internalServerCredentials,
  internalTls,
  Lifecycle,
  serveMetrics,
  startGrpcServer,
  type ServiceContext,
} from '@gantry/service-kit';
import { CheckpointServiceService } from '@gantry/proto';
import { admitEvery } from '@gantry/gateway/admission';
import { ensureStreams } from '@gantry/bus';
import { CheckpointStore, announceInstance } from '@gantry/store';
import { loadCheckpointConfig, type CheckpointConfig } from './config.js';
import { createCheckpointMetrics } from './metrics.js';
import { CHECKPOINT_SERVICE_NAME, checkpointService } from './checkpoint-service.js';
import { RetentionRunner } from './retention.js';
import { ReportConsumer } from './reports.js';
import { JobEventConsumer } from './job-events.js';
import { ResumeVerifier } from './verify.js';
import { addStorageService } from './storage-service.js';

const SERVICE = 'checkpoint';
/** In-flight calls are single Redis round trips; a few seconds is plenty to let them finish. */
const SHUTDOWN_GRACE_MS = 5_000;

export interface CheckpointServiceHandle {
  /** The bound gRPC port (useful when CHECKPOINT_GRPC_PORT=0). */
  port: number;
  metricsPort: number;
  stop(): Promise<void>;
}

/** Starts the gRPC server in `ctx`; returns once it is bound and Redis has answered. */
export async function serveCheckpoints(ctx: ServiceContext<CheckpointConfig>): Promise<{ port: number }> {
  const { config, log, lifecycle } = ctx;
  const redis = connectRedis(redisTarget(config), log);
  lifecycle.onShutdown('redis', () => redis.quit().catch(() => redis.disconnect()));
  // Report SERVING only once the registry can actually be read and written.
  await redis.ping();
  const withdraw = announceInstance(redis, { service: 'checkpoint', instanceId: `${hostname()}-${process.pid}`, version: GANTRY_VERSION, startedMs: Date.now() }, (err) => log.warn({ err: err.message }, 'announcing this instance failed'));
  lifecycle.onShutdown('announcement', withdraw);
  const store = new CheckpointStore(redis);
  const metrics = createCheckpointMetrics(ctx.metrics);
  // Discovery (issue 11): the agents' reports and the job transitions, from JetStream.
  const nc = await connectNats(config.NATS_URL, 'checkpoint', log, config.NATS_CREDS_FILE);
  lifecycle.onShutdown('nats', () => nc.drain().catch(() => nc.close()));
  await ensureStreams(nc, { replicas: config.NATS_STREAM_REPLICAS, log });
  const retention = new RetentionRunner(store, nc, log, metrics, undefined, config.CHECKPOINT_RETENTION_POLICIES);
  const reports = new ReportConsumer(nc, store, retention, metrics, log, config.CHECKPOINT_REPORT_PLACEMENT_WAIT_MS);
  const jobEvents = new JobEventConsumer(nc, store, config.CHECKPOINT_RECORD_TTL_SECONDS, log);
  await reports.start();
  await jobEvents.start();
  // Grace periods end without a report: pass over the jobs seen since start now and then.
  const sweep = setInterval(() => {
    for (const job of reports.jobsSeen()) void retention.run(job).catch((err: unknown) => log.warn({ job, err: (err as Error).message }, 'retention pass failed'));
  }, config.CHECKPOINT_RETENTION_INTERVAL_MS);
  lifecycle.onShutdown('consumers', async () => {
    clearInterval(sweep);
    await Promise.all([reports.stop(), jobEvents.stop()]);
  });
  const grpc = await startGrpcServer(config.BIND_HOST, config.CHECKPOINT_GRPC_PORT, (server) => {
    // Strict decoding and the shared size bounds before validation.ts's own rules (the gateway's admission module).
    server.addService(...admitEvery(CheckpointServiceService, checkpointService(store, metrics, log, new ResumeVerifier(nc, store, log))));
    return [CHECKPOINT_SERVICE_NAME, addStorageService(server, ctx, redis)];
  }, ctx.internalTls && internalServerCredentials(ctx.internalTls)); // callers: the scheduler, agents, CLI and SDK with a certificate of the internal CA
  lifecycle.onShutdown('grpc', () => grpc.shutdown(SHUTDOWN_GRACE_MS));
  return { port: grpc.port };
}

/** Runs the service in this process from `source` (default process.env); throws ConfigError on bad config. */
export async function startCheckpointService(source: NodeJS.ProcessEnv = process.env): Promise<CheckpointServiceHandle> {
  const config = loadCheckpointConfig(source);
  const tls = internalTls(config);
  const log = createLogger(SERVICE, config.LOG_LEVEL);
  const metrics = createRegistry(SERVICE);
  const lifecycle = new Lifecycle(log);
  try {
    const served = await serveMetrics(metrics, config.BIND_HOST, config.METRICS_PORT);
    lifecycle.onShutdown('metrics', () => new Promise((resolve) => served.server.close(resolve)));
    const { port } = await serveCheckpoints({ config, log, metrics, lifecycle, metricsPort: served.port, internalTls: tls });
    log.info({ port, metricsPort: served.port }, 'checkpoint service listening');
    return { port, metricsPort: served.port, stop: () => lifecycle.shutdown() };
  } catch (err) {
    await lifecycle.shutdown();
    throw err;
  }
}
