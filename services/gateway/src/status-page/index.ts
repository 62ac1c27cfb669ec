// The status page's configuration and start-up, for main.ts.
import { z } from 'zod';
import type { NatsConnection } from '@nats-io/transport-node';
import { StorageServiceClient, type AuthServiceServer, type JobServiceServer, type NodeServiceServer } from '@gantry/proto';
import { internalChannelCredentials, internalChannelOptions, type InternalTls, type Logger } from '@gantry/service-kit';
import { EventFeed } from './event-feed.js';
import { startStatusPage, type StatusPage } from './server.js';

export const statusPageEnv = {
  /** Port of the read-only web status page; off (the default) serves none, 0 picks a free port. */
  GATEWAY_STATUS_PORT: z.string().trim().default('off').refine((v) => v === 'off' || (/^\d{1,5}$/.test(v) && Number(v) <= 65535), 'must be off or a TCP port (0-65535)'),
  /** The checkpoint service, whose StorageService gives the page its storage targets. */
  CHECKPOINT_ADDR: z.string().min(1).default('127.0.0.1:7072'),
};

export interface StatusPageDeps {
  handlers: { jobs: JobServiceServer; nodes: NodeServiceServer; auth: AuthServiceServer };
  nc: NatsConnection;
  /** The gateway's public TLS files: the page is served over HTTPS with them. */
  tls: { certFile: string; keyFile: string; clientCaFile?: string } | undefined;
  internalTls: InternalTls | undefined;
  log: Logger;
}

export async function startStatusPageFromConfig(config: { GATEWAY_STATUS_PORT: string; CHECKPOINT_ADDR: string; BIND_HOST: string }, deps: StatusPageDeps): Promise<StatusPage | undefined> {
  if (config.GATEWAY_STATUS_PORT === 'off') return undefined;
  const storage = new StorageServiceClient(config.CHECKPOINT_ADDR, internalChannelCredentials(deps.internalTls), internalChannelOptions(deps.internalTls));
  const page = await startStatusPage({
    host: config.BIND_HOST, port: Number(config.GATEWAY_STATUS_PORT), tls: deps.tls, log: deps.log,
    sources: { ...deps.handlers, storage, feed: new EventFeed(deps.nc, deps.log) },
  });
  deps.log.info({ port: page.port, tls: deps.tls ? 'https' : 'http' }, 'status page listening');
  return { port: page.port, close: async () => { await page.close(); storage.close(); } };
}
