import { describe, expect, it } from 'vitest';
import { CheckpointFormat } from '@gantry/proto';
import { ok, message } from './spec-fixtures.js';
import { validateSpec } from '../src/admission/validate.js';


describe('JobSpec.checkpoint validation', () => {
  it('accepts a directory with the auto format, a forced format, a storage target and retention', () => {
    expect(validateSpec(ok({ checkpoint: { dir: '/ckpt/run1', format: CheckpointFormat.CHECKPOINT_FORMAT_UNSPECIFIED, storageTarget: '', retention: undefined } })).checkpoint?.dir).toBe('/ckpt/run1');
    const s = validateSpec(ok({ checkpoint: { dir: '/ckpt/run1', format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, storageTarget: 'nfs-a', retention: { keepLast: 3, keepEvery: 1000, gcGraceSeconds: 600, delete: true } } }));
    expect(s.checkpoint).toMatchObject({ format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, storageTarget: 'nfs-a', retention: { keepLast: 3 } });
  });

  it.each([
    ['', 'spec.checkpoint.dir is required when spec.checkpoint is set'],
    ['ckpt', 'spec.checkpoint.dir must be an absolute path, got "ckpt"'],
    ['/ckpt/../etc', `spec.checkpoint.dir must not contain '..' segments, got "/ckpt/../etc"`],
    ['/', 'spec.checkpoint.dir must not be the root directory'],
    ['/./', 'spec.checkpoint.dir must not be the root directory'],
    ['/a\0b', 'spec.checkpoint.dir must not contain NUL characters'],
  ])('refuses dir %j', (dir, msg) => {
    expect(message(() => validateSpec(ok({ checkpoint: { dir, format: 0, storageTarget: '', retention: undefined } })))).toBe(msg);
  });

  it('names every other problem at once', () => {
    const details = message(() => validateSpec(ok({
      env: { GANTRY_CHECKPOINT_DIR: '/x' },
      checkpoint: { dir: '/ckpt', format: 42 as CheckpointFormat, storageTarget: 'bad target', retention: { keepLast: 1_000_000, keepEvery: 0, gcGraceSeconds: 99 * 24 * 3600, delete: false } },
    })));
    expect(details.split('; ')).toEqual([
      'spec.env.GANTRY_CHECKPOINT_DIR is set by Gantry for every rank and cannot be overridden',
      'spec.checkpoint.format has unknown value 42',
      'spec.checkpoint.storage_target must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$, got "bad target"',
      'spec.checkpoint.retention.keep_last must be between 0 and 100000, got 1000000',
      'spec.checkpoint.retention.gc_grace_seconds must be between 0 and 2592000, got 8553600',
    ]);
  });
});
