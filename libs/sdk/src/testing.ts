// `@gantry/sdk/testing`: a real in-process gRPC server with hand-written handlers, for testing
// code built on the SDK (retries, streams, the CLI) without the Gantry services. Methods left
// out answer UNIMPLEMENTED, as grpc-js does for any unregistered handler.
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  AdminServiceService,
  CheckpointServiceService,
  JobServiceService,
  NodeServiceService,
  type AdminServiceServer,
  type CheckpointServiceServer,
  type JobServiceServer,
  type NodeServiceServer,
} from '@gantry/proto';

export interface TestServerHandlers {
  jobs?: Partial<JobServiceServer>;
  nodes?: Partial<NodeServiceServer>;
  checkpoints?: Partial<CheckpointServiceServer>;
  /** gantry.v1.AdminService (the gateway serves it next to jobs and nodes). */
  admin?: Partial<AdminServiceServer>;
}

export interface TestServer {
  /** 127.0.0.1:<port>, for `new GantryClient({ address })` or `gantry --addr`. */
  address: string;
  server: Server;
  close(): Promise<void>;
}

export async function startTestServer(handlers: TestServerHandlers): Promise<TestServer> {
  const server = new Server();
  if (handlers.jobs) server.addService(JobServiceService, handlers.jobs as JobServiceServer);
  if (handlers.nodes) server.addService(NodeServiceService, handlers.nodes as NodeServiceServer);
  if (handlers.admin) server.addService(AdminServiceService, handlers.admin as AdminServiceServer);
  if (handlers.checkpoints) server.addService(CheckpointServiceService, handlers.checkpoints as CheckpointServiceServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    server,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
}

/** A status error as grpc-js handlers send it: `callback(err)` for unary, `call.emit('error', err)` for streams. */
export function statusError(code: status, details: string): Partial<ServiceError> {
  return { code, details, message: details };
}
