// The gateway: Gantry's one public endpoint. Stateless; run as many as you like.
import { ConfigError, connectNats, env, startGrpcServer, startService, tlsEnv, tlsFiles } from '@gantry/service-kit';
import { ensureStreams } from '@gantry/bus';
import { schedulerClients } from './scheduler-client.js';
import { JobServiceService, jobService } from './job-service.js';
import { NodeServiceService, nodeService } from './node-service.js';
import { AdminServiceService, adminService } from './admin-service.js';

const { config, log, lifecycle } = await startService('gateway', {
  GATEWAY_GRPC_PORT: env.port(7070),
  SCHEDULER_ADDR: env.str('127.0.0.1:7071'),
  ...tlsEnv,
});
let tls;
try {
  tls = tlsFiles(config);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`gateway: ${err.message}\n`);
  process.exit(2);
}
const nc = await connectNats(config.NATS_URL, 'gateway', log);
lifecycle.onShutdown('nats', () => nc.drain());
await ensureStreams(nc, { replicas: config.NATS_STREAM_REPLICAS, log });
const scheduler = schedulerClients(config.SCHEDULER_ADDR);
lifecycle.onShutdown('scheduler-client', () => scheduler.jobs.close());
const grpc = await startGrpcServer(config.BIND_HOST, config.GATEWAY_GRPC_PORT, (server) => {
  server.addService(JobServiceService, jobService(log, scheduler.jobs, nc));
  server.addService(NodeServiceService, nodeService(log, scheduler.nodes));
  // Operator RPCs; authentication and per-tenant authorisation come with the auth issue.
  server.addService(AdminServiceService, adminService(log, scheduler.admin));
  return ['gantry.v1.JobService', 'gantry.v1.NodeService', 'gantry.v1.AdminService'];
}, tls);
lifecycle.onShutdown('grpc', () => grpc.shutdown(5_000));
log.info({ grpcPort: grpc.port, scheduler: config.SCHEDULER_ADDR, tls: tls ? (tls.clientCaFile ? 'mutual' : 'server') : 'off' }, 'gateway started');
