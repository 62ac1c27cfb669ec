// Operator RPCs, forwarded to the scheduler (which validates the policy).
import { hostname } from 'node:os';
import { AdminServiceService, NodeOperation, ServiceInstance, type AdminServiceClient, type AdminServiceServer } from '@gantry/proto';
import { GANTRY_VERSION, invalidArgument } from '@gantry/service-kit';
import { call } from './scheduler-client.js';
import { admitToken } from './admission/shared.js';
import type { Guard } from './auth/guard.js';

const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_REASON_BYTES = 1024;
/** A week: a drain that should take longer is one an operator ends by hand. */
const MAX_DRAIN_TIMEOUT_SECONDS = 86_400 * 7;
/** The operations report's window: a minute .. 90 days (the scheduler reads every node's records for it). */
const MIN_REPORT_SECONDS = 60;
const MAX_REPORT_SECONDS = 86_400 * 90;

function requireConfig(json: string): void {
  if (!json.trim()) throw invalidArgument('config_json is required');
  if (Buffer.byteLength(json) > MAX_CONFIG_BYTES) throw invalidArgument(`config_json must be at most ${MAX_CONFIG_BYTES} bytes`);
}

const ADMIN = (m: string) => `gantry.v1.AdminService/${m}`;

/** This gateway, as `gantry admin status` lists it beside the instances the scheduler knows. */
const SELF = { service: 'gateway', instanceId: `${hostname()}-${process.pid}`, version: GANTRY_VERSION, startedAt: new Date() };

export function adminService(guard: Guard, scheduler: AdminServiceClient): AdminServiceServer {
  return {
    getSchedulingConfig: guard.unary(ADMIN('GetSchedulingConfig'), (req) => call(scheduler, scheduler.getSchedulingConfig, req)),
    setSchedulingConfig: guard.unary(ADMIN('SetSchedulingConfig'), (req, ctx) => {
      ctx.audit.target = 'scheduling-config';
      requireConfig(req.configJson);
      return call(scheduler, scheduler.setSchedulingConfig, req);
    }),
    getHealthConfig: guard.unary(ADMIN('GetHealthConfig'), (req) => call(scheduler, scheduler.getHealthConfig, req)),
    setHealthConfig: guard.unary(ADMIN('SetHealthConfig'), (req, ctx) => {
      ctx.audit.target = 'health-config';
      requireConfig(req.configJson);
      return call(scheduler, scheduler.setHealthConfig, req);
    }),
    getClusterStatus: guard.unary(ADMIN('GetClusterStatus'), async (req) => {
      const res = await call(scheduler, scheduler.getClusterStatus, req);
      return { ...res, services: [ServiceInstance.create({ ...SELF, lastSeen: new Date() }), ...res.services] };
    }),
    getOperationsReport: guard.unary(ADMIN('GetOperationsReport'), (req) => {
      if (req.sinceSeconds < MIN_REPORT_SECONDS || req.sinceSeconds > MAX_REPORT_SECONDS) {
        throw invalidArgument(`since_seconds must be ${MIN_REPORT_SECONDS}..${MAX_REPORT_SECONDS} (90 days), got ${req.sinceSeconds}`);
      }
      return call(scheduler, scheduler.getOperationsReport, req);
    }),
    operateNode: guard.unary(ADMIN('OperateNode'), (req) => {
      admitToken('name', req.name);
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
