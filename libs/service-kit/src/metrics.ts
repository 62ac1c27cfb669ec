// Prometheus metrics for a process: one registry, default process metrics, and a tiny HTTP
// server that answers /metrics (and /healthz for load balancers that do not speak gRPC).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: 'gantry_' });
  return registry;
}

export async function serveMetrics(registry: Registry, host: string, port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry.metrics().then(
        (body) => { res.writeHead(200, { 'content-type': registry.contentType }); res.end(body); },
        (err: unknown) => { res.writeHead(500); res.end(String(err)); },
      );
    } else if (req.url === '/healthz') {
      res.writeHead(200); res.end('ok\n');
    } else {
      res.writeHead(404); res.end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
