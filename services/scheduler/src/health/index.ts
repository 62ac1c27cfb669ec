// Node health detection: the public surface. evaluate.ts describes the per-window pipeline;
// types.ts the inputs and outputs; state.ts the JSON state the scheduler persists.
export { advanceHealth, advanceHealthInSteps, evaluateHealth, HealthEvaluator, type HealthEvaluation, type WindowSteps } from './evaluate.js';
export {
  DEFAULT_HEALTH_CONFIG, HealthConfigError, parseHealthConfig, resolveHealthConfig,
  type HealthConfig, type HealthConfigInput, type HysteresisLevel,
} from './config.js';
export { DEFAULT_SIGNALS, SIGNAL_NAMES, signalKey, parseSignalKey, type SignalName, type SignalSpec } from './signals.js';
export {
  ACTION_RANK, DEFAULT_XID_POLICY, XID_ACTIONS, decideXid, isHardAction, type XidAction, type XidPolicyEntry,
} from './xid-actions.js';
export {
  cloneHealthState, emptyHealthState, parseHealthState, serializeHealthState, HealthStateError, HEALTH_STATE_VERSION, type HealthState,
} from './state.js';
export { median, mad, medianAndMad, summarize, robustZ } from './robust.js';
export type * from './types.js';
