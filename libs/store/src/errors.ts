// Outcomes of a compare-and-set that the caller must handle (not bugs).
export class StaleWriteError extends Error {
  override name = 'StaleWriteError';
  constructor(readonly key: string, readonly currentRev: number, readonly currentState: string) {
    super(`stale write to ${key}: now at revision ${currentRev} in state ${currentState || '(missing)'}`);
  }
}

export class FencedError extends Error {
  override name = 'FencedError';
  constructor(readonly epoch: string) {
    super(`write rejected: fencing epoch ${epoch} is no longer the leader's`);
  }
}

export class AllocationConflictError extends Error {
  override name = 'AllocationConflictError';
  constructor(readonly detail: string) {
    super(`allocation conflict: ${detail}`);
  }
}

/**
 * An idempotency key that already created a job with a different spec. It carries the gRPC
 * status it stands for (ALREADY_EXISTS = 6) and its details, so the services' handlers pass it
 * to the client as that status without a mapping of their own.
 */
export class IdempotencyConflictError extends Error {
  override name = 'IdempotencyConflictError';
  readonly code = 6;
  readonly details: string;
  constructor(readonly key: string, readonly jobId: string) {
    const details = `idempotency key ${JSON.stringify(key)} already created job ${jobId} with a different spec; use a new key, or the same spec to get that job back`;
    super(details);
    this.details = details;
  }
}
