// Recovery and health settings at test speed, shared by the e2e tests: recoveries that take
// seconds (as they should in production), and a detector with one-second windows whose
// baselines are ready after two seconds of normal telemetry.

/** Fast settle and backoff (SchedulingConfig.recovery). */
export const FAST_RECOVERY = { settleMs: 1_000, backoffInitialMs: 200, backoffMaxMs: 1_000 };

/**
 * The health detector at test speed (a HealthConfig document). Corrected ECC weighs double so
 * that a storm alone reaches QUARANTINED (the defaults need corroboration from other signals).
 */
export const FAST_HEALTH = {
  windowSec: 1,
  baseline: { bucketSec: 1, buckets: 30, minBuckets: 2 },
  peers: { minPeers: 2 },
  deviation: { halfLifeSec: 2 },
  signals: { 'gpu.ecc_sbe_rate': { weight: 2 } },
  states: { suspect: { enterWindows: 2 }, quarantine: { enterWindows: 3 } },
};
