// Shared by the gateway's validation tests: a minimal valid spec, and the message of the
// INVALID_ARGUMENT a validation throws.
import { expect } from 'vitest';
import { JobSpec } from '@gantry/proto';
import { GrpcError } from '@gantry/service-kit';

export const ok = (p: Partial<JobSpec>) => JobSpec.fromPartial({ nodes: 1, gpusPerNode: 8, command: ['true'], ...p });

export function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(3);
    return (err as GrpcError).details;
  }
  throw new Error('expected INVALID_ARGUMENT');
}
