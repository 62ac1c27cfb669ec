// A gRPC server with the standard grpc.health.v1 health service and server reflection
// (grpc.reflection v1 and v1alpha) over the services it registers, so grpcurl and load
// balancers work without extra setup.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { loadDescriptorSet } from '@gantry/proto';
import { DescriptorIndex, addReflection } from './reflection.js';

export interface GrpcServer {
  server: grpc.Server;
  health: HealthImplementation;
  port: number;
  /** Stops accepting calls, lets in-flight calls finish (up to graceMs), then forces. */
  shutdown(graceMs: number): Promise<void>;
}

/** PEM file paths; with `clientCaFile`, clients must present a certificate it signed (mutual TLS). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  clientCaFile?: string;
}

/** Credentials for `tls`: none (plaintext), PEM files, or ready credentials (e.g. internalServerCredentials). */
export function serverCredentials(tls: TlsFiles | grpc.ServerCredentials | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  if (tls instanceof grpc.ServerCredentials) return tls;
  const ca = tls.clientCaFile ? readFileSync(tls.clientCaFile) : null;
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }], ca !== null);
}

let descriptors: DescriptorIndex | undefined;

/** The file descriptors of every service a Gantry server may run, read once per process. */
function descriptorIndex(): DescriptorIndex {
  descriptors ??= new DescriptorIndex(loadDescriptorSet());
  return descriptors;
}

/** `register` adds the services and returns the names to report in health checks. */
export async function startGrpcServer(
  host: string,
  port: number,
  register: (server: grpc.Server) => string[],
  tls?: TlsFiles | grpc.ServerCredentials,
): Promise<GrpcServer> {
  const server = new grpc.Server({ 'grpc.keepalive_permit_without_calls': 1 });
  // Reflection lists what was actually added to this server, whatever `register` returns.
  const registered: string[] = [];
  const addService = server.addService.bind(server);
  server.addService = (service, implementation) => {
    addService(service, implementation);
    const path = Object.values(service)[0]?.path;
    if (path) registered.push(path.slice(1, path.lastIndexOf('/')));
  };
  const services = register(server);
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(services.map((s) => [s, 'SERVING' as const])) });
  health.addToServer(server);
  server.addService = addService;
  addReflection(server, descriptorIndex(), [...registered, 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']);
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    server,
    health,
    port: bound,
    shutdown: (graceMs) =>
      new Promise<void>((resolve) => {
        for (const s of ['', ...services]) health.setStatus(s, 'NOT_SERVING');
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
        force.unref();
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      }),
  };
}
