// The gateway: Gantry's one public endpoint. Stateless; run as many as you like.
import { ConfigError, connectNats, connectRedis, env, internalChannelCredentials, internalChannelOptions, redisTarget, startGrpcServer, startService, tlsEnv, tlsFiles } from '@gantry/service-kit';
import { ensureStreams } from '@gantry/bus';
import { AuthConfigError, Authenticator, assertEveryMethodListed, authSettingsFromEnv, strictService } from '@gantry/auth';
import { schedulerClients } from './scheduler-client.js';
import { JobServiceService, jobService } from './job-service.js';
import { NodeServiceService, nodeService } from './node-service.js';
import { AdminServiceService, adminService } from './admin-service.js';
import { AuthServiceService, authService } from './auth-service.js';
import { AuditLog } from './auth/audit.js';
import { Guard } from './auth/guard.js';
import { TenantDirectory } from './auth/tenants.js';
import { startStatusPageFromConfig, statusPageEnv } from './status-page/index.js';
import { storageTargetCheck } from './admission/storage-target.js';
import { StorageServiceClient } from '@gantry/proto';

const { config, log, lifecycle, metrics, internalTls } = await startService('gateway', {
  GATEWAY_GRPC_PORT: env.port(7070),
  SCHEDULER_ADDR: env.str('127.0.0.1:7071'),
  /** Entries kept in the audit stream (the oldest are trimmed). */
  GATEWAY_AUDIT_MAX_ENTRIES: env.int(100_000, 1_000, 10_000_000),
  ...tlsEnv,
  ...statusPageEnv,
});
let tls;
let auth: Authenticator;
try {
  tls = tlsFiles(config);
  const settings = authSettingsFromEnv(process.env);
  if (settings.modes.includes('mtls') && !tls?.clientCaFile) throw new AuthConfigError('GATEWAY_AUTH', 'mtls needs mutual TLS: set TLS_CERT_FILE, TLS_KEY_FILE and TLS_CLIENT_CA_FILE');
  auth = await Authenticator.create(settings);
} catch (err) {
  if (!(err instanceof ConfigError) && !(err instanceof AuthConfigError)) throw err;
  process.stderr.write(`gateway: ${err.message}\n`);
  process.exit(2);
}
if (!auth.enabled) {
  log.warn('GATEWAY_AUTH=off: every caller is an anonymous admin of every tenant. Local development only; see docs/security.md before exposing this gateway.');
}
const nc = await connectNats(config.NATS_URL, 'gateway', log, config.NATS_CREDS_FILE);
lifecycle.onShutdown('nats', () => nc.drain());
await ensureStreams(nc, { replicas: config.NATS_STREAM_REPLICAS, log });
const redis = connectRedis(redisTarget(config), log);
// Audit appends still in flight get a second to land; a Redis that is down must not hold up the exit.
lifecycle.onShutdown('redis', () => Promise.race([redis.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]).then(() => redis.disconnect()));
const audit = new AuditLog(redis, log, metrics, config.GATEWAY_AUDIT_MAX_ENTRIES);
const guard = new Guard(auth, log, audit, metrics);
const scheduler = schedulerClients(config.SCHEDULER_ADDR, internalTls);
lifecycle.onShutdown('scheduler-client', () => scheduler.jobs.close());
const tenants = new TenantDirectory(scheduler.admin);
const services = [JobServiceService, NodeServiceService, AdminServiceService, AuthServiceService];
assertEveryMethodListed(services);
// Jobs with checkpoint.admit_flushes are checked against the checkpoint service's storage targets.
const storage = new StorageServiceClient(config.CHECKPOINT_ADDR, internalChannelCredentials(internalTls), internalChannelOptions(internalTls));
lifecycle.onShutdown('storage-client', () => storage.close());
const handlers = { jobs: jobService(guard, scheduler.jobs, nc, tenants, storageTargetCheck(storage, config.CHECKPOINT_ADDR)), nodes: nodeService(guard, scheduler.nodes), admin: adminService(guard, scheduler.admin), auth: authService(guard, audit) };
const grpc = await startGrpcServer(config.BIND_HOST, config.GATEWAY_GRPC_PORT, (server) => {
  // strictService: requests are decoded with a fatal UTF-8 decoder, malformed ones reach the
  // guard as MalformedRequest (INVALID_ARGUMENT) instead of grpc-js's INTERNAL.
  server.addService(strictService(JobServiceService), handlers.jobs);
  server.addService(strictService(NodeServiceService), handlers.nodes);
  server.addService(strictService(AdminServiceService), handlers.admin);
  server.addService(strictService(AuthServiceService), handlers.auth);
  return ['gantry.v1.JobService', 'gantry.v1.NodeService', 'gantry.v1.AdminService', 'gantry.v1.AuthService'];
}, tls);
lifecycle.onShutdown('grpc', () => grpc.shutdown(5_000));
// The read-only web status page, when GATEWAY_STATUS_PORT is set: the same handlers, through the same guard.
const statusPage = await startStatusPageFromConfig(config, { handlers, nc, tls, internalTls, log });
if (statusPage) lifecycle.onShutdown('status-page', () => statusPage.close());
log.info({ grpcPort: grpc.port, statusPort: statusPage?.port ?? 'off', scheduler: config.SCHEDULER_ADDR, internalTls: internalTls ? 'mutual' : 'off', tls: tls ? (tls.clientCaFile ? 'mutual' : 'server') : 'off', auth: auth.enabled ? auth.settings.modes.join(',') : 'off', rateLimit: auth.settings.rateLimit }, 'gateway started');
