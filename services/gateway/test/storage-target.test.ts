// checkpoint.admit_flushes needs a storage target to take its ranks' leases on: the named one,
// else the one whose mount prefix holds the directory (the longest prefix, as StorageService
// picks it). The gateway refuses the rest at submit (e2e: storage-admission-flushes.test.ts).
import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { credentials, status } from '@grpc/grpc-js';
import { CheckpointSpec, StorageServiceClient } from '@gantry/proto';
import { RESERVED_ENV } from '../src/admission/shared.js';
import { storageTargetCheck, targetForDir, unresolvedTarget } from '../src/admission/storage-target.js';

const targets = [{ name: 'outer', mountPrefix: '/mnt/ckpt' }, { name: 'inner', mountPrefix: '/mnt/ckpt/fast/' }, { name: 'root-ish', mountPrefix: '/data' }];
const spec = (dir: string, storageTarget = '') => CheckpointSpec.fromPartial({ dir, storageTarget, admitFlushes: true });

describe('the storage target of a job with admitted flushes', () => {
  it('is the longest mount prefix holding the directory, on path boundaries', () => {
    expect(targetForDir(targets, '/mnt/ckpt/run1')).toBe('outer');
    expect(targetForDir(targets, '/mnt/ckpt/fast/run1')).toBe('inner');
    expect(targetForDir(targets, '/mnt/ckpt')).toBe('outer');
    expect(targetForDir(targets, '/mnt/ckpt-other/run1')).toBeUndefined();
    expect(targetForDir(targets, '/database/x')).toBeUndefined();
  });

  it('resolves or says why not', () => {
    expect(unresolvedTarget(targets, spec('/data/run'))).toBeUndefined();
    expect(unresolvedTarget(targets, spec('/elsewhere/run', 'inner'))).toBeUndefined();
    expect(unresolvedTarget(targets, spec('/elsewhere/run'))).toBe('spec.checkpoint.admit_flushes needs a storage target: no configured target\'s mount prefix (/mnt/ckpt, /mnt/ckpt/fast/, /data) holds spec.checkpoint.dir "/elsewhere/run"; name one in spec.checkpoint.storage_target');
    expect(unresolvedTarget(targets, spec('/data/run', 'nope'))).toBe('spec.checkpoint.admit_flushes needs a configured storage target: spec.checkpoint.storage_target "nope" is not one (configured: outer, inner, root-ish)');
    expect(unresolvedTarget([], spec('/data/run'))).toMatch(/mount prefix \(none\)/);
  });

  it('UNAVAILABLE, naming the address, when the checkpoint service cannot be asked', async () => {
    // A port nobody listens on.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const addr = `127.0.0.1:${port}`;
    const client = new StorageServiceClient(addr, credentials.createInsecure());
    try {
      await expect(storageTargetCheck(client, addr)(spec('/data/run'))).rejects.toMatchObject({ code: status.UNAVAILABLE, details: expect.stringContaining(`spec.checkpoint.admit_flushes: the checkpoint service at ${addr} could not be asked for its storage targets`) });
    } finally {
      client.close();
    }
  });

  it('the variables that carry the opt-in to the ranks are reserved', () => {
    expect(RESERVED_ENV.has('GANTRY_ADMIT_FLUSHES')).toBe(true);
    expect(RESERVED_ENV.has('GANTRY_ADMIT_PRELOAD')).toBe(true);
    expect(RESERVED_ENV.has('LD_PRELOAD')).toBe(false);
  });
});
