// Operator RPCs, forwarded to the scheduler (which validates the policy).
import { AdminServiceService, type AdminServiceClient, type AdminServiceServer } from '@gantry/proto';
import { invalidArgument, unary, type Logger } from '@gantry/service-kit';
import { call } from './scheduler-client.js';

const MAX_CONFIG_BYTES = 1024 * 1024;

export function adminService(log: Logger, scheduler: AdminServiceClient): AdminServiceServer {
  return {
    getSchedulingConfig: unary(log, 'GetSchedulingConfig', (req) => call(scheduler, scheduler.getSchedulingConfig, req)),
    setSchedulingConfig: unary(log, 'SetSchedulingConfig', (req) => {
      if (!req.configJson.trim()) throw invalidArgument('config_json is required');
      if (Buffer.byteLength(req.configJson) > MAX_CONFIG_BYTES) throw invalidArgument(`config_json must be at most ${MAX_CONFIG_BYTES} bytes`);
      return call(scheduler, scheduler.setSchedulingConfig, req);
    }),
  };
}

export { AdminServiceService };
