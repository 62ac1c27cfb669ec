// Operator settings: the scheduling policy and the health config, validated before they are
// stored; operator decisions about nodes.
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
import { clusterStatus } from './cluster-status.js';
import { MAX_REPORT_SECONDS, MIN_REPORT_SECONDS, type ReportSource } from '../report/service.js';

async function storedOrDefault(read: () => Promise<string | undefined>, defaults: object): Promise<{ configJson: string }> {
  return { configJson: (await read()) ?? JSON.stringify(defaults) };
}

/** Validates a config document (`parse` throws `invalid` listing every problem), stores it with defaults filled in and returns that. */
async function replaceConfig(
  ctx: SchedulerContext, what: string, parse: () => object, invalid: new (...args: never[]) => Error, write: (json: string) => Promise<void>,
): Promise<{ configJson: string }> {
  let json: string;
  try {
    json = JSON.stringify(parse());
  } catch (err) {
    if (err instanceof invalid) throw invalidArgument(err.message);
    throw err;
  }
  await write(json);
  ctx.log.info(`${what} replaced`);
  return { configJson: json };
}

export function adminService(ctx: SchedulerContext, opts: { sentinelMaster?: string | undefined; report?: ReportSource } = {}): AdminServiceServer {
  const state = new SchedulingStateStore(ctx.redis);
  const health = new HealthStore(ctx.redis);
  return {
    getSchedulingConfig: unary(ctx.log, 'GetSchedulingConfig', () => storedOrDefault(() => state.configJson(), DEFAULT_CONFIG)),
    setSchedulingConfig: unary(ctx.log, 'SetSchedulingConfig', async (req) => {
      const res = await replaceConfig(ctx, 'scheduling policy', () => parsePolicyText(req.configJson, 'config_json'), PolicyError, (json) => state.setConfigJson(json));
      // The next pass uses it at once.
      ctx.kick();
      return res;
    }),
    getHealthConfig: unary(ctx.log, 'GetHealthConfig', () => storedOrDefault(() => health.configJson(), DEFAULT_HEALTH_CONFIG)),
    setHealthConfig: unary(ctx.log, 'SetHealthConfig', (req) =>
      replaceConfig(ctx, 'health config', () => parseHealthConfigText(req.configJson, 'config_json'), HealthConfigError, (json) => health.setConfigJson(json))),
    getClusterStatus: unary(ctx.log, 'GetClusterStatus', () => clusterStatus(ctx, opts.sentinelMaster)),
    getOperationsReport: unary(ctx.log, 'GetOperationsReport', async (req) => {
      if (req.sinceSeconds < MIN_REPORT_SECONDS || req.sinceSeconds > MAX_REPORT_SECONDS) {
        throw invalidArgument(`since_seconds must be ${MIN_REPORT_SECONDS}..${MAX_REPORT_SECONDS} (90 days), got ${req.sinceSeconds}`);
      }
      if (!opts.report) throw failedPrecondition('this scheduler was started without the operations report');
      return { report: await opts.report.report(req.sinceSeconds) };
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
