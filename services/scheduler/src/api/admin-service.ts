// Operator settings: the scheduling policy, validated before it is stored.
import { AdminServiceService, type AdminServiceServer } from '@gantry/proto';
import { invalidArgument, unary } from '@gantry/service-kit';
import { SchedulingStateStore } from '@gantry/store';
import type { SchedulerContext } from '../context.js';
import { DEFAULT_CONFIG } from '../placement/index.js';
import { PolicyError, parsePolicyText } from '../policy.js';

export function adminService(ctx: SchedulerContext): AdminServiceServer {
  const state = new SchedulingStateStore(ctx.redis);
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
  };
}

export { AdminServiceService };
