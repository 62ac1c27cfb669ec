// GetNodeTelemetry on the scheduler, against real Redis: the history a caller may ask for is
// what the store keeps per node (TELEMETRY_HISTORY_CAP); asking for more is INVALID_ARGUMENT
// rather than a shorter history that would pass for all the node had.
import { describe, expect, it } from 'vitest';
import { status, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import { GpuDevice, Node, NodeState, TelemetryBatch, type GetNodeTelemetryRequest, type GetNodeTelemetryResponse } from '@gantry/proto';
import { NodeStore, NodeTelemetryStore, TELEMETRY_HISTORY_CAP, keys } from '@gantry/store';
import { useRedis } from '../../../../libs/store/test/redis-fixture.js';
import type { SchedulerContext } from '../../src/context.js';
import { nodeService } from '../../src/api/node-service.js';

const redis = useRedis();
const T0 = Date.UTC(2026, 10, 3);

function getTelemetry(ctx: SchedulerContext, req: GetNodeTelemetryRequest): Promise<GetNodeTelemetryResponse> {
  return new Promise((resolve, reject) => {
    nodeService(ctx).getNodeTelemetry({ request: req } as ServerUnaryCall<GetNodeTelemetryRequest, GetNodeTelemetryResponse>, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

describe('GetNodeTelemetry history', () => {
  it('returns up to TELEMETRY_HISTORY_CAP earlier batches and refuses more with INVALID_ARGUMENT', async () => {
    const nodes = new NodeStore(redis());
    const ctx = { redis: redis(), nodes, log: pino({ level: 'silent' }) } as unknown as SchedulerContext;
    await redis().set(keys.leaderEpoch, '1'); // the node's registration is a leader's write
    await nodes.commit({
      prev: undefined, epoch: 1, heartbeatMs: T0, reason: 'test', instanceId: 'agent',
      next: Node.create({ name: 'api-1', state: NodeState.NODE_STATE_READY, gpus: [GpuDevice.create({ index: 0 })] }),
    });
    const store = new NodeTelemetryStore(redis());
    for (let k = 1; k <= TELEMETRY_HISTORY_CAP + 10; k++) await store.record(TelemetryBatch.create({ node: 'api-1', time: new Date(T0 + k * 10_000), seq: k }));

    const full = await getTelemetry(ctx, { name: 'api-1', history: TELEMETRY_HISTORY_CAP });
    expect(full.latest?.seq).toBe(TELEMETRY_HISTORY_CAP + 10);
    expect(full.history.map((b) => b.seq)).toEqual(Array.from({ length: TELEMETRY_HISTORY_CAP }, (_, i) => TELEMETRY_HISTORY_CAP + 9 - i));

    const err = await getTelemetry(ctx, { name: 'api-1', history: TELEMETRY_HISTORY_CAP + 1 }).then(() => undefined, (e: ServiceError) => e);
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toBe(`history must be between 0 and ${TELEMETRY_HISTORY_CAP} (the batches kept per node), got ${TELEMETRY_HISTORY_CAP + 1}`);
  });
});
