// The gateway's connection to the scheduler's internal API. Errors from the scheduler are
// passed through unchanged (they already are precise gRPC statuses).
import * as grpc from '@grpc/grpc-js';
import { JobServiceClient, NodeServiceClient } from '@gantry/proto';

type Unary<Req, Res> = (req: Req, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall;

export function call<Req, Res>(client: grpc.Client, method: Unary<Req, Res>, req: Req, timeoutMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

export function schedulerClients(address: string) {
  const creds = grpc.credentials.createInsecure();
  const options = { 'grpc.keepalive_time_ms': 30_000, 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 2_000 };
  return { jobs: new JobServiceClient(address, creds, options), nodes: new NodeServiceClient(address, creds, options) };
}
