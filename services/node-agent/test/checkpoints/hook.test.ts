// The checkpoint hook without NATS: a fake publisher records what JetStream would get.
// Real layouts (the DCP fixture of libs/checkpoint-layouts), real files, a real HTTP endpoint.
import { describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CheckpointReport } from '@gantry/proto';
import { decode } from '@gantry/bus';
import { CheckpointHook } from '../../src/checkpoints/hook.js';
import { hookContext } from '../../src/runner/hooks.js';
import { CheckpointWatcher } from '../../src/checkpoints/watcher.js';
import { CheckpointStateFile } from '../../src/checkpoints/state.js';
import { handleDelete } from '../../src/checkpoints/delete.js';
import type { RankRecord } from '../../src/runner/state-file.js';

const FIXTURE = join(import.meta.dirname, '../../../../libs/checkpoint-layouts/test/fixtures/layouts/pytorch_dcp/ckpt');
const log = pino({ level: 'silent' });
const tmp = () => mkdtempSync(join(tmpdir(), 'gantry-ckpt-hook-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fakeBus() {
  const sent: { subject: string; report: CheckpointReport; id: string }[] = [];
  const ids = new Set<string>();
  return {
    sent,
    publish: async (subject: string, data: Uint8Array, id: string) => {
      if (ids.has(id)) return; // JetStream de-duplication
      ids.add(id);
      sent.push({ subject, report: decode(CheckpointReport, data, 'CheckpointReport'), id });
    },
  };
}

const rec = (jobId: string, rank = 0): RankRecord => ({ jobId, attempt: 1, rank, pid: 1, dir: '/x', phase: 'running', startedAt: new Date().toISOString(), startReported: true, exitReported: false, processes: [] });
const env = (dir: string, rank = 0) => ({ NODE_RANK: String(rank), GANTRY_CHECKPOINT_DIR: dir, GANTRY_CHECKPOINT_FORMAT: 'auto', GANTRY_CHECKPOINT_RETENTION: '{"keepLast":2}' });

async function until<T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('checkpoint hook', () => {
  it('node rank 0 watches: IN_PROGRESS, COMPLETE, a removed storage file (CORRUPT) and a vanished directory (GONE), each once', async () => {
    const stateDir = tmp();
    const dir = join(tmp(), 'ckpt');
    mkdirSync(dir);
    const bus = fakeBus();
    const hook = new CheckpointHook({ node: 'node-0', stateDir, publish: bus.publish, log, pollMs: 50 });
    await hook.start();
    try {
      const added = hook.prestart(hookContext(rec('job-a'), { env: env(dir) }));
      expect(added).toMatchObject({ GANTRY_CKPT_URL: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), GANTRY_CKPT_TOKEN: expect.stringMatching(/^[0-9a-f]{64}$/) });
      hook.poststart(hookContext(rec('job-a'), { env: env(dir) }));
      // a save in progress: storage files first, .metadata last
      mkdirSync(join(dir, 'step-100'));
      cpSync(join(FIXTURE, '__0_0.distcp'), join(dir, 'step-100', '__0_0.distcp'));
      writeFileSync(join(dir, 'step-100', '.metadata.tmp'), '');
      await until('IN_PROGRESS report', () => bus.sent.find((s) => s.report.status === 'INCOMPLETE'));
      rmSync(join(dir, 'step-100'), { recursive: true });
      cpSync(FIXTURE, join(dir, 'step-100'), { recursive: true });
      const done = await until('COMPLETE report', () => bus.sent.find((s) => s.report.status === 'COMPLETE'));
      expect(done.subject).toBe('gantry.v1.checkpoint.report.node-0.job-a');
      expect(done.report).toMatchObject({ jobId: 'job-a', attempt: 1, node: 'node-0', dir, path: join(dir, 'step-100'), step: 100, source: 'discovery', retention: { keepLast: 2 } });
      expect(done.report.files.map((f) => f.path).sort()).toEqual(['.metadata', '__0_0.distcp', '__1_0.distcp', '__1_1.distcp']);
      await sleep(200);
      expect(bus.sent.filter((s) => s.report.status === 'COMPLETE')).toHaveLength(1);
      rmSync(join(dir, 'step-100', '__1_0.distcp'));
      const bad = await until('CORRUPT report', () => bus.sent.find((s) => s.report.status === 'CORRUPT'));
      expect(bad.report.reasons.join(' ')).toMatch(/__1_0\.distcp/);
      rmSync(join(dir, 'step-100'), { recursive: true });
      await until('GONE report', () => bus.sent.find((s) => s.report.status === 'GONE'));
    } finally {
      await hook.shutdown();
    }
  });

  it('other node ranks get the token but do not watch; a restarted hook resumes the watch without re-reporting; exit abandons what is incomplete', async () => {
    const stateDir = tmp();
    const dir = join(tmp(), 'ckpt');
    mkdirSync(join(dir, 'step-10'), { recursive: true });
    cpSync(FIXTURE, join(dir, 'step-10'), { recursive: true });
    const bus = fakeBus();
    let hook = new CheckpointHook({ node: 'node-0', stateDir, publish: bus.publish, log, pollMs: 50 });
    await hook.start();
    hook.prestart(hookContext(rec('job-b', 1), { env: env(dir, 1) }));
    hook.poststart(hookContext(rec('job-b', 1), { env: env(dir, 1) }));
    await sleep(200);
    expect(bus.sent).toHaveLength(0);
    hook.prestart(hookContext(rec('job-b'), { env: env(dir) }));
    hook.poststart(hookContext(rec('job-b'), { env: env(dir) }));
    await until('COMPLETE', () => bus.sent.length === 1);
    await hook.shutdown();
    // a new agent process (same state folder) re-adopts the rank
    const bus2 = fakeBus();
    hook = new CheckpointHook({ node: 'node-0', stateDir, publish: bus2.publish, log, pollMs: 50 });
    await hook.start();
    hook.poststart(hookContext(rec('job-b'), { restored: true }));
    mkdirSync(join(dir, 'step-20'));
    cpSync(join(FIXTURE, '__0_0.distcp'), join(dir, 'step-20', '__0_0.distcp'));
    await until('step-20 in progress', () => bus2.sent.find((s) => s.report.step === 20));
    expect(bus2.sent.map((s) => s.report.step)).toEqual([20]);
    hook.exited(hookContext(rec('job-b')));
    const ended = await until('attempt-ended report', () => bus2.sent.find((s) => s.report.attemptEnded));
    expect(ended.report).toMatchObject({ step: 20, status: 'INCOMPLETE' });
    await until('watch forgotten', () => Object.keys(hook.state.state.watches).length === 0);
    await hook.shutdown();
  });

  it('the endpoint: bearer token only, paths confined to the job directory, begin then commit by check', async () => {
    const stateDir = tmp();
    const dir = join(tmp(), 'ckpt');
    mkdirSync(dir);
    const bus = fakeBus();
    const hook = new CheckpointHook({ node: 'node-0', stateDir, publish: bus.publish, log, pollMs: 60_000 });
    await hook.start();
    try {
      const { GANTRY_CKPT_URL: url, GANTRY_CKPT_TOKEN: token } = hook.prestart(hookContext(rec('job-c', 1), { env: env(dir, 1) })) as Record<string, string>;
      const post = (route: string, body: unknown, tok = token) => fetch(`${url}${route}`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect((await post('/v1/checkpoints/begin', { path: join(dir, 'a') }, 'f'.repeat(64))).status).toBe(401);
      expect((await post('/v1/checkpoints/begin', { path: '/etc/passwd' })).status).toBe(403);
      expect((await post('/v1/checkpoints/begin', { path: join(dir, '..', '..', 'etc', 'x') })).status).toBe(403);
      expect((await post('/v1/checkpoints/begin', { path: `${dir}/new/../../escape` })).status).toBe(403);
      const begun = await post('/v1/checkpoints/begin', { path: join(dir, 'final'), step: 7 });
      expect(begun.status).toBe(200);
      expect(bus.sent.at(-1)!.report).toMatchObject({ status: 'INCOMPLETE', step: 7, source: 'explicit', path: join(dir, 'final') });
      mkdirSync(join(dir, 'final'));
      writeFileSync(join(dir, 'final', 'w.bin'), 'x');
      const early = await post('/v1/checkpoints/commit', { path: join(dir, 'final'), step: 7 });
      expect(early.status).toBe(409);
      writeFileSync(join(dir, 'final', 'GANTRY_COMPLETE'), '');
      const ok = await post('/v1/checkpoints/commit', { path: join(dir, 'final'), step: 7 });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ status: 'COMPLETE', step: 7, files: 2 });
      expect(bus.sent.at(-1)!.report).toMatchObject({ status: 'COMPLETE', step: 7, format: 6 });
      // storage admission without a checkpoint service address: a clear 501, not a hang
      const noStorage = await post('/v1/storage/acquire', { mode: 'write' });
      expect(noStorage.status).toBe(501);
      expect((await noStorage.json() as { error: string }).error).toMatch(/storage admission is not configured on this agent \(set GANTRY_CHECKPOINT_ADDR/);
      symlinkSync('/etc', join(dir, 'escape'));
      expect((await post('/v1/checkpoints/commit', { path: join(dir, 'escape') })).status).toBe(403);
      hook.exited(hookContext(rec('job-c', 1)));
      expect((await post('/v1/checkpoints/begin', { path: join(dir, 'b') })).status).toBe(401);
    } finally {
      await hook.shutdown();
    }
  });

  it('a path only announced by an explicit begin is not reported GONE by the watch before it exists', async () => {
    const stateDir = tmp();
    const dir = join(tmp(), 'ckpt');
    mkdirSync(dir);
    const bus = fakeBus();
    const hook = new CheckpointHook({ node: 'node-0', stateDir, publish: bus.publish, log, pollMs: 30 });
    await hook.start();
    try {
      const { GANTRY_CKPT_URL: url, GANTRY_CKPT_TOKEN: token } = hook.prestart(hookContext(rec('job-e'), { env: env(dir) })) as Record<string, string>;
      hook.poststart(hookContext(rec('job-e'), { env: env(dir) }));
      const res = await fetch(`${url}/v1/checkpoints/begin`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ path: join(dir, 'later'), step: 5 }) });
      expect(res.status).toBe(200);
      await sleep(300);
      expect(bus.sent.map((s) => s.report.status)).toEqual(['INCOMPLETE']);
      mkdirSync(join(dir, 'later'));
      writeFileSync(join(dir, 'later', 'GANTRY_COMPLETE'), '');
      await until('COMPLETE by discovery', () => bus.sent.find((s) => s.report.status === 'COMPLETE' && s.report.step === 5));
      rmSync(join(dir, 'later'), { recursive: true });
      await until('GONE once it was seen', () => bus.sent.find((s) => s.report.status === 'GONE'));
    } finally {
      await hook.shutdown();
    }
  });

  it('does not report GONE a checkpoint created and committed while its pass was sending (created after the scan)', async () => {
    const dir = join(tmp(), 'ckpt');
    mkdirSync(join(dir, 'step-1'), { recursive: true });
    cpSync(FIXTURE, join(dir, 'step-1'), { recursive: true });
    const bus = fakeBus();
    const state = new CheckpointStateFile(tmp());
    const late = join(dir, 'step-2');
    // While the pass awaits the publish of step-1's report, training code creates step-2 and
    // its explicit commit marks it seen: the scan of this pass predates it.
    const publish = async (subject: string, data: Uint8Array, id: string) => {
      if (!state.state.reported['job-g']?.[late]) {
        mkdirSync(late);
        cpSync(FIXTURE, late, { recursive: true });
        (state.state.reported['job-g'] ??= {})[late] = { digest: 'committed-explicitly', seq: 1, step: 2, seen: true };
      }
      await bus.publish(subject, data, id);
    };
    const w = new CheckpointWatcher({ jobId: 'job-g', attempt: 1, rank: 0, dir, format: 'dcp', retention: '' }, { node: 'n', state, publish, log, pollMs: 60_000 });
    await w.scan(false);
    expect(bus.sent.map((x) => `${x.report.path.slice(dir.length + 1)} ${x.report.status}`)).toEqual(['step-1 COMPLETE']);
  });

  it('a checkpoint whose deletion by retention is under way is reported neither as found nor GONE, and forgotten once deleted', async () => {
    const dir = join(tmp(), 'ckpt');
    for (const step of [1, 2, 3]) cpSync(FIXTURE, join(dir, `step-${step}`), { recursive: true });
    const bus = fakeBus();
    const state = new CheckpointStateFile(tmp());
    state.state.dirs['job-r'] = { dir, at: Date.now() };
    const w = new CheckpointWatcher({ jobId: 'job-r', attempt: 1, rank: 0, dir, format: 'dcp', retention: '' }, { node: 'n', state, publish: bus.publish, log, pollMs: 60_000 });
    await w.scan(false);
    expect(bus.sent.map((x) => x.report.status)).toEqual(['COMPLETE', 'COMPLETE', 'COMPLETE']);
    // The state inside a deletion (delete.ts): step-1 already gone from disk, step-2 half
    // removed, neither forgotten yet. A pass then must say nothing of them: a GONE report
    // would make the service record a deletion outside Gantry before the one it asked for.
    const [one, two] = [join(dir, 'step-1'), join(dir, 'step-2')];
    state.deleting.add(one).add(two);
    rmSync(one, { recursive: true });
    rmSync(join(two, '__1_0.distcp'));
    await w.scan(true);
    expect(bus.sent).toHaveLength(3);
    // step-1's deletion ends as the handler ends one; step-2's goes through the handler: then
    // nothing is reported of either, and nothing is left marked as being deleted.
    delete state.state.reported['job-r']![one];
    state.deleting.clear();
    expect(await handleDelete({ jobId: 'job-r', checkpointId: 'ck-2', dir, path: two, dryRun: false, reason: 'keep_last 1' }, state, log)).toMatchObject({ ok: true, deleted: true });
    expect(state.deleting.size).toBe(0);
    expect(Object.keys(state.state.reported['job-r']!)).toEqual([join(dir, 'step-3')]);
    await w.scan(true);
    expect(bus.sent).toHaveLength(3);
  });

  it('a checkpoint deleted by retention while a report of it was being published is not reported again (not GONE)', async () => {
    const dir = join(tmp(), 'ckpt');
    cpSync(FIXTURE, join(dir, 'step-1'), { recursive: true });
    const bus = fakeBus();
    const state = new CheckpointStateFile(tmp());
    state.state.dirs['job-p'] = { dir, at: Date.now() };
    const one = join(dir, 'step-1');
    let deleteDuringPublish = false;
    const publish = async (subject: string, data: Uint8Array, id: string) => {
      await bus.publish(subject, data, id);
      if (deleteDuringPublish) {
        deleteDuringPublish = false;
        expect(await handleDelete({ jobId: 'job-p', checkpointId: 'ck-1', dir, path: one, dryRun: false, reason: 'keep_last 1' }, state, log)).toMatchObject({ deleted: true });
      }
    };
    const w = new CheckpointWatcher({ jobId: 'job-p', attempt: 1, rank: 0, dir, format: 'dcp', retention: '' }, { node: 'n', state, publish, log, pollMs: 60_000 });
    await w.scan(false);
    // A changed step-1 is reported; retention deletes it before that publish returns.
    rmSync(join(one, '__1_0.distcp'));
    deleteDuringPublish = true;
    await w.scan(false);
    expect(state.state.reported['job-p']?.[one]).toBeUndefined();
    await w.scan(true);
    expect(bus.sent.map((x) => x.report.status)).toEqual(['COMPLETE', 'CORRUPT']);
  });

  it('an unchanged directory is not checked again (stat walk only); any change, or the last pass, checks it', async () => {
    const dir = join(tmp(), 'ckpt');
    mkdirSync(join(dir, 'step-1'), { recursive: true });
    cpSync(FIXTURE, join(dir, 'step-1'), { recursive: true });
    const bus = fakeBus();
    const w = new CheckpointWatcher({ jobId: 'job-f', attempt: 1, rank: 0, dir, format: 'dcp', retention: '' }, { node: 'n', state: new CheckpointStateFile(tmp()), publish: bus.publish, log, pollMs: 60_000 });
    await w.scan(false);
    await w.scan(false);
    await w.scan(false);
    expect([w.checks, bus.sent.length]).toEqual([1, 1]);
    writeFileSync(join(dir, 'step-1', '__0_0.distcp'), 'short');
    await w.scan(false);
    expect(w.checks).toBe(2);
    expect(bus.sent.at(-1)!.report.status).toBe('CORRUPT');
    await w.scan(true);
    expect(w.checks).toBe(3);
  });

  it('forgets jobs not seen for a week (their directory and what was reported), keeps watched ones', async () => {
    const hook = new CheckpointHook({ node: 'node-0', stateDir: tmp(), publish: fakeBus().publish, log, pollMs: 60_000 });
    const st = hook.state.state;
    st.dirs = { old: { dir: '/c/old', at: 0 }, fresh: { dir: '/c/fresh', at: Date.now() }, watched: { dir: '/c/w', at: 0 } };
    st.reported = { old: { '/c/old/a': { digest: 'd', seq: 1 } }, fresh: { '/c/fresh/a': { digest: 'd', seq: 1 } }, watched: {}, stray: {} };
    st.watches = { 'watched:1:0': { jobId: 'watched', attempt: 1, rank: 0, dir: '/c/w', format: 'auto', retention: '' } };
    hook.prune();
    expect(Object.keys(st.dirs).sort()).toEqual(['fresh', 'watched']);
    expect(Object.keys(st.reported).sort()).toEqual(['fresh', 'watched']);
  });

  it('verify: re-checks a checkpoint on demand (COMPLETE, CORRUPT after a file is removed, GONE), and says nothing for directories it never watched', async () => {
    const dir = join(tmp(), 'ckpt');
    mkdirSync(dir);
    cpSync(FIXTURE, join(dir, 'step-7'), { recursive: true });
    const hook = new CheckpointHook({ node: 'node-0', stateDir: tmp(), publish: fakeBus().publish, log, pollMs: 60_000 });
    await hook.start();
    try {
      const req = CheckpointReport.create({ jobId: 'job-v', attempt: 1, dir, path: join(dir, 'step-7'), step: 7, format: 1 });
      expect((await hook.verify(req)).status).toBe('');
      hook.prestart(hookContext(rec('job-v'), { env: env(dir) }));
      expect((await hook.verify(req)).status).toBe('COMPLETE');
      rmSync(join(dir, 'step-7', '__1_1.distcp'));
      const bad = await hook.verify(req);
      expect(bad.status).toBe('CORRUPT');
      expect(bad.reasons.join(' ')).toMatch(/__1_1\.distcp/);
      rmSync(join(dir, 'step-7'), { recursive: true });
      expect((await hook.verify(req)).status).toBe('GONE');
      expect((await hook.verify({ ...req, path: '/etc' })).status).toBe('');
    } finally {
      await hook.shutdown();
    }
  });

  it('deletion: only inside the directory watched for the job, never through a symlink, a dry run deletes nothing', async () => {
    const stateDir = tmp();
    const dir = join(tmp(), 'ckpt');
    mkdirSync(join(dir, 'step-1'), { recursive: true });
    const outside = tmp();
    symlinkSync(outside, join(dir, 'step-2'));
    const hook = new CheckpointHook({ node: 'node-0', stateDir, publish: fakeBus().publish, log, pollMs: 60_000 });
    await hook.start();
    try {
      const req = (path: string, extra = {}) => ({ jobId: 'job-d', checkpointId: 'ck', dir, path, dryRun: false, reason: 'keep_last 1', ...extra });
      expect((await hook.deleteCheckpoint(req(join(dir, 'step-1')))).message).toMatch(/has not watched/);
      hook.prestart(hookContext(rec('job-d'), { env: env(dir) }));
      expect(await hook.deleteCheckpoint(req(join(dir, 'step-1'), { dryRun: true }))).toMatchObject({ ok: true, deleted: false, message: expect.stringMatching(/^dry run/) });
      expect((await hook.deleteCheckpoint(req(join(dir, 'step-2')))).message).toMatch(/symlink/);
      expect((await hook.deleteCheckpoint(req(join(dir, '..', 'x')))).message).toMatch(/not inside/);
      expect((await hook.deleteCheckpoint(req(dir))).message).toMatch(/not inside/);
      expect((await hook.deleteCheckpoint(req(join(dir, 'step-1'), { dir: '/' }))).message).toMatch(/not \//);
      expect(await hook.deleteCheckpoint(req(join(dir, 'step-1')))).toMatchObject({ ok: true, deleted: true });
      const { existsSync } = await import('node:fs');
      expect(existsSync(join(dir, 'step-1'))).toBe(false);
      expect(existsSync(outside)).toBe(true);
    } finally {
      await hook.shutdown();
    }
  });
});
