// What an XID on a job's GPU does to the job's attempt, read from the health config's XID
// policy (services/scheduler/src/health/xid-actions.ts; operators override entries without a
// release): an action that takes the GPU or node out of service (quarantine, reset, reboot)
// is the node's fault and ends the attempt at once; restart-app (31, 43, 94 and the like)
// restarts the application without blaming the node; the rest (warn, ignore, drain after the
// job) leaves the attempt running.
import { FailureClass, type XidEvent } from '@gantry/proto';
import { decideXid, type HealthConfig, type XidAction } from '../health/index.js';

export function failureClassOfAction(action: XidAction): FailureClass | undefined {
  switch (action) {
    case 'quarantine-now':
    case 'reset-gpu':
    case 'reboot':
      return FailureClass.FAILURE_CLASS_NODE_FAULT;
    case 'restart-app':
      return FailureClass.FAILURE_CLASS_GPU_CONTAINED;
    default:
      return undefined;
  }
}

/** The failure class an XID on a job's GPU implies, or undefined when it does not end the attempt. */
export function xidFailureClass(xid: Pick<XidEvent, 'xid' | 'fatal'>, config: HealthConfig): { failureClass: FailureClass | undefined; rule: string } {
  // Repeat and remap-failure escalations need the detector's history; they act at its window.
  const d = decideXid({ xid: xid.xid, fatal: xid.fatal }, config.xid.policy, config.xid.unknownAction, { remapFailure: false, earlierOnGpu: 0 });
  return { failureClass: failureClassOfAction(d.action), rule: d.rule };
}
