import { describe, expect, it } from 'vitest';
import { JobSpec, TopologyRequirement } from '@gantry/proto';
import { GrpcError } from '@gantry/service-kit';
import { validateSpec, validateSubmit } from '../src/admission/validate.js';

const ok = (p: Partial<JobSpec>) => JobSpec.fromPartial({ nodes: 1, gpusPerNode: 8, command: ['true'], ...p });

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(3);
    return (err as GrpcError).details;
  }
  throw new Error('expected INVALID_ARGUMENT');
}

describe('job spec validation', () => {
  it('fills defaults', () => {
    const s = validateSpec(ok({}));
    expect(s).toMatchObject({ name: 'job', tenant: 'default', priorityClass: 'normal' });
  });

  it.each([
    [{ nodes: 0 }, 'spec.nodes must be between 1 and 4096, got 0'],
    [{ gpusPerNode: 0 }, 'spec.gpus_per_node must be between 1 and 8, got 0'],
    [{ command: [''] }, 'spec.command[0] (the program) must not be empty'],
    [{ command: ['a\0b'] }, 'spec.command[0] must not contain NUL characters'],
    [{ env: { '1X': 'y' } }, 'spec.env key "1X" must match ^[A-Za-z_][A-Za-z0-9_]*$'],
    [{ env: { CUDA_VISIBLE_DEVICES: '0' } }, 'spec.env.CUDA_VISIBLE_DEVICES is set by Gantry for every rank and cannot be overridden'],
    [{ timeLimitSeconds: 40 * 24 * 3600 }, 'spec.time_limit_seconds must be between 0 and 2592000, got 3456000'],
    [{ topology: 42 as TopologyRequirement }, 'spec.topology has unknown value 42'],
    [{ nodeSelector: { 'zone': 'a b' } }, 'spec.node_selector.zone value must match ^[A-Za-z0-9._-]{0,128}$, got "a b"'],
    [{ excludeNodes: ['x y'] }, 'spec.exclude_nodes[0] must be a node name matching'],
    [{ name: '-x' }, 'spec.name must match'],
    [{ gpuTypes: [''] }, 'spec.gpu_types[0] must be a non-empty model name'],
    [{ stopGraceSeconds: 4000 }, 'spec.stop_grace_seconds must be between 0 and 3600, got 4000'],
    [{ command: ['python', '-c', 'x'.repeat(100_000), 'y'.repeat(100_000), 'z'.repeat(100_000)] }, 'spec must encode to at most 262144 bytes'],
  ])('%j -> %s', (patch, expected) => {
    expect(message(() => validateSpec(ok(patch)))).toContain(expected);
  });

  it('requires a spec and checks the idempotency key', () => {
    expect(message(() => validateSpec(undefined))).toBe('spec is required');
    expect(message(() => validateSubmit({ spec: ok({}), idempotencyKey: 'has space' }))).toMatch(/^idempotency_key must be/);
    expect(validateSubmit({ spec: ok({}), idempotencyKey: 'ok-key:1' }).idempotencyKey).toBe('ok-key:1');
  });
});
