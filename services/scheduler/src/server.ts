// Wires the scheduler: stores and connections, the gRPC API (any replica), and the leader's
// work (scheduling loop, node registry, rank events, outbox relay) started and stopped with
// leadership.
import { jetstream } from '@nats-io/jetstream';
import { GANTRY_VERSION, connectNats, connectRedis, internalServerCredentials, redisTarget, startGrpcServer, startService } from '@gantry/service-kit';
import { JobStore, LeaderLease, NodeStore, Outbox } from '@gantry/store';
import { ensureStreams, streamFill, subjects } from '@gantry/bus';
import { Gauge } from 'prom-client';
import { schedulerEnv } from './config.js';
import type { SchedulerContext } from './context.js';
import { AgentCommander } from './agents/commands.js';
import { loadCommandSigningKey } from './agents/signing-key.js';
import { NodeRegistry } from './agents/node-registry.js';
import { AgentIntakeThread } from './agents/intake-thread.js';
import { AgentMessageGuard } from './agents/message-guard.js';
import { registerNodeGauges } from './agents/node-gauges.js';
import { RankEventConsumer } from './agents/rank-events.js';
import { LeaderElector } from './leader.js';
import { OutboxRelay } from './relay.js';
import { HostEventIngest } from './telemetry/host-events.js';
import { telemetryMetrics } from './telemetry/batch-ingest.js';
import { SchedulingLoop } from './scheduling-loop.js';
import { JobCache } from './jobs/job-cache.js';
import { admitEvery } from '@gantry/gateway/admission';
import { JobServiceService, jobService } from './api/job-service.js';
import { NodeServiceService, nodeService } from './api/node-service.js';
import { AdminServiceService, adminService } from './api/admin-service.js';
import { ReportSource } from './report/service.js';
import { seedPolicy } from './policy.js';
import { RecoveryController } from './recovery/controller.js';
import { ResumeSource } from './recovery/resume.js';
import { HealthStore, SchedulingStateStore, announceInstance } from '@gantry/store';
import { HealthConfigCache } from './health-monitor/config-source.js';
import { HealthMonitor } from './health-monitor/monitor.js';
import { LogActivity } from './health-monitor/log-activity.js';

export async function main(): Promise<void> {
  const { config, log, metrics, lifecycle, internalTls } = await startService('scheduler', schedulerEnv);
  const redis = connectRedis(redisTarget(config), log);
  lifecycle.onShutdown('redis', () => redis.quit());
  const nc = await connectNats(config.NATS_URL, `scheduler ${config.INSTANCE_ID}`, log, config.NATS_CREDS_FILE);
  lifecycle.onShutdown('nats', () => nc.drain());
  await ensureStreams(nc, { replicas: config.NATS_STREAM_REPLICAS, log });
  // How full each stream is: GANTRY_AGENT_EVENTS refuses new rank exits when full (never drops them); alert well before.
  new Gauge({
    name: 'gantry_nats_stream_fill_ratio', help: 'Fill of a JetStream stream against its byte or message limit (0..1)', labelNames: ['stream', 'discard'], registers: [metrics],
    async collect() {
      this.reset();
      for (const f of await streamFill(nc).catch(() => [])) this.set({ stream: f.stream, discard: f.discard }, f.fillRatio);
    },
  });
  const js = jetstream(nc);
  await seedPolicy(new SchedulingStateStore(redis), config.SCHEDULING_CONFIG, log);
  // Jobs kept from before the per-tenant indexes: indexed once, so listing never falls back to a scan.
  const indexed = await new JobStore(redis).ensureIndexes();
  if (indexed > 0) log.info({ indexed }, 'indexed existing jobs by tenant');

  const jobCache = new JobCache(new JobStore(redis, { attemptsKept: config.JOB_ATTEMPTS_KEPT }));
  // The context's callbacks reach the elector and loop created below; they run only later.
  const ctx: SchedulerContext = {
    log, nc, js, redis, metrics,
    // Each job event is relayed as soon as its commit returns, not at the relay's next poll;
    // each committed record goes to the job copy, which then need not read it back.
    jobs: new JobStore(redis, { attemptsKept: config.JOB_ATTEMPTS_KEPT, onEvent: () => relay.kick(), onCommitted: (rec) => jobCache.committed(rec) }),
    jobCache,
    nodes: new NodeStore(redis),
    commander: new AgentCommander(nc, log, config.COMMAND_RESEND_MS, () => elector.epoch, loadCommandSigningKey(config.COMMAND_SIGNING_KEY_FILE)),
    settings: {
      heartbeatTimeoutMs: config.HEARTBEAT_TIMEOUT_MS,
      heartbeatIntervalMs: config.HEARTBEAT_INTERVAL_MS,
      cycleIntervalMs: config.CYCLE_INTERVAL_MS,
      stopGraceSeconds: config.STOP_GRACE_SECONDS,
      queueDepth: config.SCHEDULER_QUEUE_DEPTH,
    },
    epoch: () => elector.epoch,
    kick: () => {
      loop.kick();
      // A replica that does not lead tells the leader.
      if (elector.epoch === 0) nc.publish(subjects.schedulerKick);
    },
    recovered: (job, at) => recovery.observeRecovered(job, at),
    agentEpoch: (epoch) => { elector.agentEpoch(epoch); },
  };
  const recovery = new RecoveryController(ctx);
  const resume = new ResumeSource(config.CHECKPOINT_ADDR, internalTls);
  lifecycle.onShutdown('checkpoint client', () => resume.close());
  // The operations report asks the checkpoint process for checkpoint records and storage targets.
  const report = new ReportSource(ctx, config.CHECKPOINT_ADDR, internalTls);
  lifecycle.onShutdown('report checkpoint client', () => report.close());
  const loop = new SchedulingLoop(ctx, recovery, resume);
  // Heartbeats and telemetry batches are taken in on a thread of their own (intake-thread.ts),
  // so that they reach Redis whatever the main thread is busy with.
  let intake: AgentIntakeThread | undefined;
  const registry = new NodeRegistry(ctx, (heartbeats) => (intake = new AgentIntakeThread({
    natsUrl: config.NATS_URL, natsCredsFile: config.NATS_CREDS_FILE, redis: redisTarget(config), logLevel: config.LOG_LEVEL, instanceId: config.INSTANCE_ID,
  }, { heartbeats, telemetry: telemetryMetrics(metrics), guard: AgentMessageGuard.of(metrics, log) }, log, metrics)));
  await intake!.start();
  lifecycle.onShutdown('agent intake thread', () => registry.close());
  const rankEvents = new RankEventConsumer(ctx);
  const outbox = new Outbox(redis);
  const relay = new OutboxRelay(outbox, js, log);
  // Read on scrape from Redis (every replica sees the same outbox): a stuck relay shows as a growing age.
  new Gauge({
    name: 'gantry_outbox_pending_entries', help: 'Job and node events written to the Redis outbox and not yet relayed to JetStream', registers: [metrics],
    async collect() { this.set((await outbox.backlog().catch(() => ({ pending: 0 }))).pending); },
  });
  new Gauge({
    name: 'gantry_outbox_oldest_entry_age_seconds', help: 'Age of the oldest outbox entry not yet relayed to JetStream (0 when none waits)', registers: [metrics],
    async collect() { this.set((await outbox.backlog().catch(() => ({ oldestAgeSec: 0 }))).oldestAgeSec); },
  });
  const healthStore = new HealthStore(redis);
  const healthConfigs = new HealthConfigCache(healthStore, log);
  const hostEvents = new HostEventIngest(ctx, healthConfigs);
  const health = new HealthMonitor(ctx, healthStore, healthConfigs, new LogActivity(nc));
  registerNodeGauges(redis, metrics, () => elector.epoch > 0);
  const leaderGauge = new Gauge({ name: 'gantry_scheduler_leader', help: '1 while this replica leads', registers: [metrics] });
  const kickSub = nc.subscribe(subjects.schedulerKick, { callback: () => loop.kick() });

  const elector = new LeaderElector(new LeaderLease(redis, config.INSTANCE_ID, config.LEASE_TTL_MS), log, {
    onElected: async () => {
      leaderGauge.set(1);
      relay.start();
      await registry.start();
      await rankEvents.start();
      await hostEvents.start();
      loop.start();
      health.start();
    },
    onDeposed: async () => {
      leaderGauge.set(0);
      loop.stop();
      health.stop();
      registry.stop();
      relay.stop();
      await rankEvents.stop();
      await hostEvents.stop();
    },
  });
  elector.start();
  lifecycle.onShutdown('leadership', async () => { kickSub.unsubscribe(); await elector.stop(); });

  const grpc = await startGrpcServer(config.BIND_HOST, config.SCHEDULER_GRPC_PORT, (server) => {
    // Strict decoding and the shared bounds on every request (the gateway's admission module),
    // whoever calls: a gateway, or a holder of an internal certificate calling directly.
    server.addService(...admitEvery(JobServiceService, jobService(ctx)));
    server.addService(...admitEvery(NodeServiceService, nodeService(ctx)));
    server.addService(...admitEvery(AdminServiceService, adminService(ctx, { sentinelMaster: config.REDIS_SENTINEL_MASTER, report })));
    return ['gantry.v1.JobService', 'gantry.v1.NodeService', 'gantry.v1.AdminService'];
  }, internalTls && internalServerCredentials(internalTls)); // callers: the gateway, the checkpoint service
  lifecycle.onShutdown('grpc', () => grpc.shutdown(5_000));
  const withdraw = announceInstance(redis, { service: 'scheduler', instanceId: config.INSTANCE_ID, version: GANTRY_VERSION, startedMs: Date.now() }, (err) => log.warn({ err: err.message }, 'announcing this instance failed'));
  lifecycle.onShutdown('announcement', withdraw);
  log.info({ grpcPort: grpc.port, instance: config.INSTANCE_ID, internalTls: internalTls ? 'mutual' : 'off' }, 'scheduler started');
}
