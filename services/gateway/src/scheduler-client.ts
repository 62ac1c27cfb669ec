// The gateway's connection to the scheduler's internal API. Errors from the scheduler are
// passed through unchanged (they already are precise gRPC statuses).
import * as grpc from '@grpc/grpc-js';
import { AdminServiceClient, JobServiceClient, NodeServiceClient } from '@gantry/proto';
import { internalChannelCredentials, internalChannelOptions, type InternalTls } from '@gantry/service-kit';

type Unary<Req, Res> = (req: Req, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall;

export function call<Req, Res>(client: grpc.Client, method: Unary<Req, Res>, req: Req, timeoutMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

/**
 * `address` is host:port, or a comma-separated list of ip:port of scheduler replicas: any
 * replica serves the API (state is in Redis), so calls are spread round-robin, and
 * keepalive pings take a hung replica (a paused process) out of rotation within seconds.
 * With internal TLS, the gateway presents its certificate and checks the scheduler's.
 */
export function schedulerClients(address: string, tls?: InternalTls) {
  const creds = internalChannelCredentials(tls);
  const many = address.includes(',');
  const target = many ? `ipv4:${address}` : address;
  const options: grpc.ChannelOptions = {
    'grpc.keepalive_time_ms': 2_000,
    'grpc.keepalive_timeout_ms': 2_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 2_000,
    ...internalChannelOptions(tls),
    ...(many ? { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) } : {}),
  };
  const jobs = new JobServiceClient(target, creds, options);
  const shared = { ...options, channelOverride: jobs.getChannel() };
  return { jobs, nodes: new NodeServiceClient(target, creds, shared), admin: new AdminServiceClient(target, creds, shared) };
}
