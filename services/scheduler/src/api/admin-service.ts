// Operator settings: the scheduling policy, validated before it is stored.
import { AdminServiceService, type AdminServiceServer } from '@gantry/proto';
import { failedPrecondition, invalidArgument, notFound, unary } from '@gantry/service-kit';
import { HealthStore, SchedulingStateStore } from '@gantry/store';
import { DEFAULT_HEALTH_CONFIG, HealthConfigError } from '../health/index.js';
import { parseHealthConfigText } from '../health-monitor/config-source.js';
import { NodeNotFoundError, applyNodeOperation } from '../nodes/operate.js';
import { NodeOperationError } from '../nodes/operations.js';
import type { SchedulerContext } from '../context.js';
import { DEFAULT_CONFIG } from '../placement/index.js';
import { PolicyError, parsePolicyText } from '../policy.js';

export function adminService(ctx: SchedulerContext): AdminServiceServer {
  const state = new SchedulingStateStore(ctx.redis);
  const health = new HealthStore(ctx.redis);
  return {
    getSchedulingConfig: unary(ctx.log, 'GetSchedulingConfig', async () => ({ configJson: (await state.configJson()) ?? JSON.stringify(DEFAULT_CONFIG) })),
    setSchedulingConfig: unary(ctx.log, 'SetSchedulingConfig', async (req) => {
      let json: string;
      try {
        json = JSON.stringify(parsePolicyText(req.configJson, 'config_json'));
      } catch (err) {
        if (err instanceof PolicyError) throw invalidArgument(err.message);
        throw err;
      }
      await state.setConfigJson(json);
      ctx.log.info('scheduling policy replaced');
      ctx.kick();
      return { configJson: json };
    }),
    getHealthConfig: unary(ctx.log, 'GetHealthConfig', async () => ({ configJson: (await health.configJson()) ?? JSON.stringify(DEFAULT_HEALTH_CONFIG) })),
    setHealthConfig: unary(ctx.log, 'SetHealthConfig', async (req) => {
      let json: string;
      try {
        json = JSON.stringify(parseHealthConfigText(req.configJson, 'config_json'));
      } catch (err) {
        if (err instanceof HealthConfigError) throw invalidArgument(err.message);
        throw err;
      }
      await health.setConfigJson(json);
      ctx.log.info('health config replaced');
      return { configJson: json };
    }),
    operateNode: unary(ctx.log, 'OperateNode', async (req) => {
      try {
        return { node: await applyNodeOperation(ctx, health, req) };
      } catch (err) {
        if (err instanceof NodeNotFoundError) throw notFound(err.message);
        if (err instanceof NodeOperationError) throw failedPrecondition(err.message);
        throw err;
      }
    }),
  };
}

export { AdminServiceService };
