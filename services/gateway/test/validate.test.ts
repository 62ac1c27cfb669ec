import { describe, expect, it } from 'vitest';
import { Launcher, TopologyRequirement } from '@gantry/proto';
import { ok, message } from './spec-fixtures.js';
import { validateSpec, validateSubmit } from '../src/admission/validate.js';


describe('job spec validation', () => {
  it('fills defaults', () => {
    const s = validateSpec(ok({}));
    expect(s).toMatchObject({ name: 'job', tenant: 'default', priorityClass: 'normal' });
  });

  it.each([
    [{ nodes: 0 }, 'spec.nodes must be between 1 and 4096, got 0'],
    [{ gpusPerNode: 33 }, 'spec.gpus_per_node must be between 0 and 32, got 33'],
    [{ env: { RANK: '0' } }, 'spec.env.RANK is set by Gantry for every rank and cannot be overridden'],
    [{ launcher: 7 as Launcher }, 'spec.launcher has unknown value 7'],
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

  it('run_as_user: a user name or uid[:gid] as the agents accept it, else refused naming the field', () => {
    for (const ok_ of ['alice', 'svc_ml-1', 'build$', '1001', '1001:1001', '4294967294:0']) expect(validateSpec(ok({ runAsUser: ok_ })).runAsUser).toBe(ok_);
    expect(validateSpec(ok({})).runAsUser).toBe('');
    expect(message(() => validateSpec(ok({ runAsUser: 'bad user' })))).toBe('spec.run_as_user must be a user name or uid[:gid], got "bad user"');
    expect(message(() => validateSpec(ok({ runAsUser: '-rf' })))).toBe('spec.run_as_user must be a user name or uid[:gid], got "-rf"');
    expect(message(() => validateSpec(ok({ runAsUser: '1001:' })))).toBe('spec.run_as_user must be a user name or uid[:gid], got "1001:"');
    expect(message(() => validateSpec(ok({ runAsUser: '4294967295' })))).toBe('spec.run_as_user must be a user name or uid[:gid] with ids up to 4294967294, got "4294967295"');
    expect(message(() => validateSpec(ok({ runAsUser: 'a'.repeat(33) })))).toMatch(/^spec\.run_as_user must be a user name or uid\[:gid\], got "a{33}"$/);
  });

  it('takes 0 GPUs per node (every GPU of the node) and hosts of up to 32 GPUs', () => {
    expect(validateSpec(ok({ gpusPerNode: 0 })).gpusPerNode).toBe(0);
    expect(validateSpec(ok({ gpusPerNode: 16 })).gpusPerNode).toBe(16);
  });

  it('reports every problem of a request at once, in one line', () => {
    const details = message(() => validateSubmit({ spec: ok({ nodes: 0, gpusPerNode: 99, command: [], priorityClass: 'urgent' }), idempotencyKey: 'has space' }));
    expect(details.split('; ')).toEqual([
      'spec.nodes must be between 1 and 4096, got 0',
      'spec.gpus_per_node must be between 0 and 32, got 99',
      'spec.command must not be empty',
      'spec.priority_class must be one of critical, high, normal, low, preemptible, got "urgent"',
      'idempotency_key must be 1-128 characters of letters, digits, \'.\', \'_\', \':\' or \'-\', got "has space"',
    ]);
    expect(details).not.toContain('\n');
  });

  it('turns short GPU names into the models nvidia-smi reports, and keeps full names and unknown ones', () => {
    expect(validateSpec(ok({ gpuTypes: ['h100'] })).gpuTypes).toEqual(['NVIDIA H100 80GB HBM3', 'NVIDIA H100 PCIe', 'NVIDIA H100 NVL', 'NVIDIA H100']);
    expect(validateSpec(ok({ gpuTypes: ['A100-80GB', 'NVIDIA A100-SXM4-80GB', 'MI300X'] })).gpuTypes).toEqual(['NVIDIA A100-SXM4-80GB', 'NVIDIA A100 80GB PCIe', 'MI300X']);
    expect(validateSubmit({ spec: ok({ gpuTypes: ['H100', 'H200', 'A100', 'B200'] }), idempotencyKey: '' }).spec!.gpuTypes).toHaveLength(11);
  });

  it('requires a spec and checks the idempotency key', () => {
    expect(message(() => validateSpec(undefined))).toBe('spec is required');
    expect(message(() => validateSubmit({ spec: ok({}), idempotencyKey: 'has space' }))).toMatch(/^idempotency_key must be/);
    expect(validateSubmit({ spec: ok({}), idempotencyKey: 'ok-key:1' }).idempotencyKey).toBe('ok-key:1');
  });
});
