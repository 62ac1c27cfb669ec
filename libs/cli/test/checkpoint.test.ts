import { describe, expect, it } from 'vitest';
import { Checkpoint, CheckpointEvent, CheckpointFormat, CheckpointState } from '@gantry/proto';
import { submissionFromFlags } from '../src/commands/job.js';
import { mergeSubmissions, parseJobFile } from '../src/jobfile.js';
import { checkpointDetail, checkpointTable, humanBytes } from '../src/commands/ckpt.js';
import { submitProblemsAsFlags } from '../src/flag-names.js';
import { main } from '../src/cli.js';

describe('job file checkpoint section and --checkpoint-* flags', () => {
  const FILE = `
command: [python, train.py]
checkpoint:
  dir: /ckpt/run1
  format: megatron
  storageTarget: nfs-a
  retention: { keepLast: 3, keepEvery: 1000, gcGrace: 2h, delete: true }
`;

  it('reads the section into JobSpec.checkpoint', () => {
    expect(parseJobFile(FILE, 'job.yaml').spec.checkpoint).toEqual({
      dir: '/ckpt/run1', format: CheckpointFormat.CHECKPOINT_FORMAT_MEGATRON, storageTarget: 'nfs-a',
      retention: { keepLast: 3, keepEvery: 1000, gcGraceSeconds: 7200, delete: true },
    });
  });

  it('names the bad field', () => {
    expect(() => parseJobFile('checkpoint: { dir: /x, fmt: dcp }', 'j.yaml')).toThrow('j.yaml: checkpoint.fmt: unknown field (known: dir, format, storageTarget, admitFlushes, retention)');
    expect(() => parseJobFile('checkpoint: { dir: /x, admitFlushes: yes please }', 'j.yaml')).toThrow(/checkpoint\.admitFlushes must be true or false/);
    expect(() => parseJobFile('checkpoint: { dir: /x, format: lightning }', 'j.yaml')).toThrow(/checkpoint\.format: unknown checkpoint format "lightning"/);
    expect(() => parseJobFile('checkpoint: { retention: { delete: yes please } }', 'j.yaml')).toThrow(/checkpoint\.retention\.delete must be true or false/);
  });

  it('flags set only what they name, over the file', () => {
    const flags = submissionFromFlags({ checkpointFormat: CheckpointFormat.CHECKPOINT_FORMAT_DCP, checkpointKeepLast: 5 }, []);
    const merged = mergeSubmissions(parseJobFile(FILE, 'job.yaml'), flags);
    expect(merged.spec.checkpoint).toEqual({
      dir: '/ckpt/run1', format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, storageTarget: 'nfs-a',
      retention: { keepLast: 5, keepEvery: 1000, gcGraceSeconds: 7200, delete: true },
    });
    expect(submissionFromFlags({ checkpointDir: '/c' }, []).spec.checkpoint).toEqual({ dir: '/c', format: 0, storageTarget: '', retention: undefined });
    expect(submissionFromFlags({}, ['x']).spec.checkpoint).toBeUndefined();
  });

  it('admitFlushes: the job file key and --checkpoint-admit-flushes set JobSpec.checkpoint.admit_flushes', () => {
    expect(parseJobFile('checkpoint: { dir: /ckpt/a, admitFlushes: true }', 'j.yaml').spec.checkpoint?.admitFlushes).toBe(true);
    expect(parseJobFile('checkpoint: { dir: /ckpt/a }', 'j.yaml').spec.checkpoint?.admitFlushes).toBeFalsy();
    const flags = submissionFromFlags({ checkpointAdmitFlushes: true }, []);
    expect(flags.spec.checkpoint?.admitFlushes).toBe(true);
    expect(mergeSubmissions(parseJobFile(FILE, 'job.yaml'), flags).spec.checkpoint).toMatchObject({ dir: '/ckpt/run1', storageTarget: 'nfs-a', admitFlushes: true });
    expect(submitProblemsAsFlags('spec.checkpoint.admit_flushes needs a storage target')).toBe('--checkpoint-admit-flushes needs a storage target');
  });

  it('the submit flags parse, and server problems come back as flags', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['job', 'submit', '--checkpoint-format', 'zip', '--', 'true'], { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {} });
    expect(code).not.toBe(0);
    expect(err.join('')).toMatch(/unknown checkpoint format "zip"/);
    expect(submitProblemsAsFlags("spec.checkpoint.dir must not contain '..' segments, got \"/a/../b\"; spec.checkpoint.retention.keep_last must be between 0 and 100000, got 7"))
      .toBe("--checkpoint-dir must not contain '..' segments, got \"/a/../b\"; --checkpoint-keep-last must be between 0 and 100000, got 7");
  });
});

describe('gantry ckpt formatting', () => {
  const now = new Date('2026-01-01T00:10:00Z');
  const ck = Checkpoint.fromPartial({
    id: 'ck-job-1-20-123', jobId: 'job-1', attempt: 2, step: 20, path: '/ckpt/job-1/step-20', bytes: 3 * 1024 * 1024, state: CheckpointState.CHECKPOINT_STATE_CORRUPT,
    format: CheckpointFormat.CHECKPOINT_FORMAT_DCP, reason: 'failed the check after commit: __1_0.distcp is missing', source: 'discovery', node: 'node-0',
    files: [{ path: '.metadata', size: 1000, sha256: '' }, { path: '__0_0.distcp', size: 2000, sha256: 'abcdef0123456789ffff' }],
    createdAt: new Date('2026-01-01T00:00:00Z'), committedAt: new Date('2026-01-01T00:01:00Z'), updatedAt: new Date('2026-01-01T00:09:00Z'),
  });

  it('list: a row per checkpoint with state (WRITING as IN_PROGRESS), format, size, files and reason', () => {
    const t = checkpointTable([ck, { ...ck, id: 'ck-job-1-30-1', step: 30, state: CheckpointState.CHECKPOINT_STATE_WRITING, reason: '' }], now);
    expect(t).toMatch(/ID +STEP +STATE +FORMAT +SIZE +FILES/);
    expect(t).toMatch(/20 +CORRUPT +dcp +3\.0 MiB +2 +2/);
    expect(t).toMatch(/30 +IN_PROGRESS/);
    expect(checkpointTable([], now)).toBe('no checkpoints');
    expect(humanBytes(512)).toBe('512 B');
  });

  it('show: fields, the manifest and the events of this checkpoint', () => {
    const events = [CheckpointEvent.fromPartial({ checkpointId: ck.id, jobId: 'job-1', kind: 'corrupt', message: ck.reason, time: new Date('2026-01-01T00:09:00Z') })];
    const d = checkpointDetail(ck, events, now);
    expect(d).toMatch(/State: +CORRUPT/);
    expect(d).toMatch(/Reason: +failed the check after commit: __1_0\.distcp is missing/);
    expect(d).toMatch(/Source: +discovery on node-0/);
    expect(d).toMatch(/Files \(2\):/);
    expect(d).toMatch(/__0_0\.distcp +2000 +abcdef0123456789/);
    expect(d).toMatch(/Events:\n.*corrupt/);
  });
});
