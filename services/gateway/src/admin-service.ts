// Operator RPCs, forwarded to the scheduler (which validates the policy).
import { AdminServiceService, NodeOperation, type AdminServiceClient, type AdminServiceServer } from '@gantry/proto';
import { invalidArgument, unary, type Logger } from '@gantry/service-kit';
import { call } from './scheduler-client.js';
import { requireToken } from './admission/validate.js';

const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_REASON_BYTES = 1024;
/** A week: a drain that should take longer is one an operator ends by hand. */
const MAX_DRAIN_TIMEOUT_SECONDS = 86_400 * 7;

function requireConfig(json: string): void {
  if (!json.trim()) throw invalidArgument('config_json is required');
  if (Buffer.byteLength(json) > MAX_CONFIG_BYTES) throw invalidArgument(`config_json must be at most ${MAX_CONFIG_BYTES} bytes`);
}

export function adminService(log: Logger, scheduler: AdminServiceClient): AdminServiceServer {
  return {
    getSchedulingConfig: unary(log, 'GetSchedulingConfig', (req) => call(scheduler, scheduler.getSchedulingConfig, req)),
    setSchedulingConfig: unary(log, 'SetSchedulingConfig', (req) => {
      requireConfig(req.configJson);
      return call(scheduler, scheduler.setSchedulingConfig, req);
    }),
    getHealthConfig: unary(log, 'GetHealthConfig', (req) => call(scheduler, scheduler.getHealthConfig, req)),
    setHealthConfig: unary(log, 'SetHealthConfig', (req) => {
      requireConfig(req.configJson);
      return call(scheduler, scheduler.setHealthConfig, req);
    }),
    operateNode: unary(log, 'OperateNode', (req) => {
      requireToken('name', req.name);
      if (!Object.values(NodeOperation).includes(req.operation) || req.operation === NodeOperation.NODE_OPERATION_UNSPECIFIED) {
        throw invalidArgument('operation must be one of cordon, uncordon, drain, quarantine, release');
      }
      if (Buffer.byteLength(req.reason) > MAX_REASON_BYTES) throw invalidArgument(`reason must be at most ${MAX_REASON_BYTES} bytes`);
      if (req.drainTimeoutSeconds > MAX_DRAIN_TIMEOUT_SECONDS) throw invalidArgument(`drain_timeout_seconds must be at most ${MAX_DRAIN_TIMEOUT_SECONDS}, got ${req.drainTimeoutSeconds}`);
      if (req.drainTimeoutSeconds > 0 && req.operation !== NodeOperation.NODE_OPERATION_DRAIN) throw invalidArgument('drain_timeout_seconds applies to drain only');
      return call(scheduler, scheduler.operateNode, req);
    }),
  };
}

export { AdminServiceService };
