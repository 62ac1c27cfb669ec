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
