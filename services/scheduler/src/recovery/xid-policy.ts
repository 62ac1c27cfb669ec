// Which XIDs on a job's GPU end its attempt at once, and how they are classed. Follows the
// catalogue's immediate actions (services/node-agent/src/collectors/xid/xid-catalog.csv) and
// operators' practice: a GPU that fell off the bus, uncorrectable or uncontained memory
// errors, GSP firmware timeouts and fatal NVLink errors are the node's fault; a contained
// error (94) needs the application restarted, not the node blamed. Application XIDs (13, 31,
// 43) are left to the process: it dies on its own and its exit is classed then.
import { FailureClass } from '@gantry/proto';

const NODE_FAULT_XIDS = new Set([48, 64, 74, 79, 95, 119, 120, 140]);
/** NVLink5 unit errors: node faults only when the message says Fatal. */
const NVLINK5_XIDS = new Set([144, 145, 146, 147, 148, 149, 150]);
const CONTAINED_XIDS = new Set([94]);

export interface XidFacts {
  xid: number;
  fatal?: boolean;
}

/** The failure class an XID on a job's GPU implies, or undefined when it does not end the attempt. */
export function xidFailureClass(x: XidFacts): FailureClass | undefined {
  if (NODE_FAULT_XIDS.has(x.xid)) return FailureClass.FAILURE_CLASS_NODE_FAULT;
  if (NVLINK5_XIDS.has(x.xid) && x.fatal === true) return FailureClass.FAILURE_CLASS_NODE_FAULT;
  if (CONTAINED_XIDS.has(x.xid)) return FailureClass.FAILURE_CLASS_GPU_CONTAINED;
  return undefined;
}
