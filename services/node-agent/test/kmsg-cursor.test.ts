// No XID lost across an agent restart: the persisted kmsg cursor, the reader that resumes
// after it (regular files standing in for /dev/kmsg, a fake device for EPIPE), and the
// simulated host's kernel log across "agent restarts" and a reboot.
import { appendFileSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { XidEvent } from '@gantry/proto';
import { createRegistry } from '@gantry/service-kit/metrics';
import { HostTelemetry } from '../src/host-telemetry.js';
import type { HostReporter } from '../src/reporting/host-reporter.js';
import { ReportBuffer } from '../src/reporting/report-buffer.js';
import { KmsgCursorTracker, readKmsgCursor, resumeAfter, writeKmsgCursor } from '../src/collectors/xid/kmsg-cursor.js';
import { followKmsg, type KmsgHandle, type KmsgMissed } from '../src/collectors/xid/reader.js';
import { SimKernelRing, simKernelDir } from '../src/device/sim/kernel-ring.js';
import { SimulatedBackend } from '../src/device/sim/sim-backend.js';
import { simProgram } from '../src/sim-cli.js';

const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

/** Reads until `n` lines came (or the reader caught up and `n` is 0). */
async function take(options: Parameters<typeof followKmsg>[0], n: number, waitMs = 300): Promise<string[]> {
  const ac = new AbortController();
  const out: string[] = [];
  const timer = setTimeout(() => ac.abort(), waitMs);
  try {
    for await (const l of followKmsg({ pollMs: 5, ...options, signal: ac.signal })) {
      out.push(l);
      if (out.length === n) ac.abort();
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

describe('kmsg cursor file', () => {
  it('round-trips, is replaced atomically, and reads as none when missing or corrupt', () => {
    const dir = tmp('gantry-cursor-');
    const path = join(dir, 'kmsg-cursor.json');
    expect(readKmsgCursor(path)).toBeUndefined();
    writeKmsgCursor(path, { bootId: 'b1', seq: 41 });
    writeKmsgCursor(path, { bootId: 'b1', seq: 42 });
    expect(readKmsgCursor(path)).toEqual({ bootId: 'b1', seq: 42 });
    expect(readdirSync(dir)).toEqual(['kmsg-cursor.json']);
    writeFileSync(path, '{"bootId": "b1", "se');
    expect(readKmsgCursor(path)).toBeUndefined();
    writeFileSync(path, '{"bootId": "", "seq": 3}');
    expect(readKmsgCursor(path)).toBeUndefined();
  });

  it('resumes after the cursor of this boot; takes the whole backlog on another boot or without one', () => {
    expect(resumeAfter({ bootId: 'b1', seq: 42 }, 'b1')).toBe(42);
    expect(resumeAfter({ bootId: 'b0', seq: 42 }, 'b1')).toBe(-1);
    expect(resumeAfter(undefined, 'b1')).toBe(-1);
  });

  it('saves a record that was reported at once, the others at most every flushMs', () => {
    const path = join(tmp('gantry-cursor-'), 'c.json');
    let now = 0;
    const t = new KmsgCursorTracker(path, 'b1', { flushMs: 1_000, now: () => now });
    expect(t.afterSeq).toBe(-1);
    t.advance(0, true);
    expect(readKmsgCursor(path)).toEqual({ bootId: 'b1', seq: 0 });
    now = 10;
    t.advance(1, false);
    expect(readKmsgCursor(path)!.seq).toBe(0);
    now = 1_100;
    t.advance(2, false);
    expect(readKmsgCursor(path)!.seq).toBe(2);
    t.advance(3, false);
    t.advance(2, true); // never backwards
    expect(readKmsgCursor(path)!.seq).toBe(2);
    t.flush();
    expect(readKmsgCursor(path)!.seq).toBe(3);
    // The next run of this boot resumes after it; a run after a reboot starts over.
    expect(new KmsgCursorTracker(path, 'b1').afterSeq).toBe(3);
    const rebooted = new KmsgCursorTracker(path, 'b2');
    expect(rebooted.afterSeq).toBe(-1);
    rebooted.advance(0, false);
    rebooted.flush();
    expect(readKmsgCursor(path)).toEqual({ bootId: 'b2', seq: 0 });
  });

  it('does not throw when the state directory cannot be written', () => {
    const errors: string[] = [];
    const t = new KmsgCursorTracker(join(tmp('gantry-cursor-'), 'missing', 'c.json'), 'b1', { onError: (e) => errors.push(e.message) });
    t.advance(5, true);
    expect(errors).toHaveLength(1);
  });
});

describe('kmsg reader resuming after a sequence number', () => {
  const records = ['6,10,1000,-;first', ' SUBSYSTEM=pci', '3,11,2000,-;NVRM: Xid (PCI:0000:5d:00): 79, GPU has fallen off the bus.', '6,12,3000,-;third'];

  it('reads the ring from its oldest record and skips those up to afterSeq, with their continuation lines', async () => {
    const path = join(tmp('gantry-kmsg-'), 'kmsg');
    writeFileSync(path, `${records.join('\n')}\n`);
    expect(await take({ kmsgPath: path, afterSeq: 10 }, 2)).toEqual([records[2], records[3]]);
    expect(await take({ kmsgPath: path, afterSeq: -1 }, 4)).toEqual(records);
    expect(await take({ kmsgPath: path, afterSeq: 12 }, 0)).toEqual([]);
    // Without a cursor the backlog is skipped (the journal fallback, an unknown boot).
    expect(await take({ kmsgPath: path }, 0)).toEqual([]);
  });

  it('then follows new records, a line only once it is complete', async () => {
    const path = join(tmp('gantry-kmsg-'), 'kmsg');
    writeFileSync(path, `${records.join('\n')}\n6,13,4000,-;half`);
    const ac = new AbortController();
    const got: string[] = [];
    const reading = (async () => {
      for await (const l of followKmsg({ kmsgPath: path, afterSeq: 12, pollMs: 5, signal: ac.signal })) {
        got.push(l);
        if (got.length === 2) ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([]);
    appendFileSync(path, ' written\n6,14,5000,-;next\n');
    await reading;
    expect(got).toEqual(['6,13,4000,-;half written', '6,14,5000,-;next']);
  });

  it('reports records overwritten before they were read: a jump past the cursor, a gap, EPIPE', async () => {
    const path = join(tmp('gantry-kmsg-'), 'kmsg');
    writeFileSync(path, '6,20,1,-;a\n6,21,2,-;b\n6,25,3,-;c\n');
    const missed: KmsgMissed[] = [];
    expect(await take({ kmsgPath: path, afterSeq: 17, onMissed: (m) => missed.push(m) }, 3)).toHaveLength(3);
    expect(missed).toEqual([{ afterSeq: 17, nextSeq: 20, how: 'seq-gap' }, { afterSeq: 21, nextSeq: 25, how: 'seq-gap' }]);

    // /dev/kmsg: read(2) fails once with EPIPE when the ring overtook the reader, then goes on.
    const script: Array<string | 'EPIPE'> = ['6,30,1,-;x\n', 'EPIPE', '6,40,2,-;y\n'];
    const handle: KmsgHandle = {
      async read(buffer) {
        const next = script.shift();
        if (next === undefined) throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
        if (next === 'EPIPE') throw Object.assign(new Error('EPIPE'), { code: 'EPIPE' });
        return { bytesRead: buffer.write(next) };
      },
      async close() { /* nothing */ },
    };
    const epipe: KmsgMissed[] = [];
    expect(await take({ open: async () => handle, afterSeq: 29, onMissed: (m) => epipe.push(m) }, 2)).toEqual(['6,30,1,-;x', '6,40,2,-;y']);
    expect(epipe).toEqual([{ afterSeq: 30, how: 'EPIPE' }]);
  });
});

describe('the simulated host kernel log across agent restarts', () => {
  async function inject(stateDir: string, ...args: string[]): Promise<void> {
    await simProgram(() => stateDir, () => undefined).parseAsync(['sim', ...args, '--state-dir', stateDir], { from: 'user' });
  }

  /** One "agent run": the agent's host watcher on a fresh backend, until it caught up. */
  async function run(stateDir: string): Promise<Array<{ xid: number; gpu?: number; time?: Date }>> {
    const backend = new SimulatedBackend({ seed: 7, clock: 'wall', kernel: new SimKernelRing(simKernelDir(stateDir)) });
    const out: XidEvent[] = [];
    const reporter = { xid: (x: XidEvent) => out.push(x), telemetry: () => undefined } as unknown as HostReporter;
    const buffer = new ReportBuffer(join(stateDir, 'reports'), { maxBytes: 1 << 20 });
    const host = new HostTelemetry('sim-0', backend, reporter, buffer, 3_600_000, stateDir, pino({ level: 'silent' }), createRegistry('test'));
    host.setInventory(await backend.fingerprint());
    host.start();
    // Until the cursor reached the newest record (each record here is an XID, saved at once).
    const last = new SimKernelRing(simKernelDir(stateDir)).lastSeq();
    const deadline = Date.now() + 10_000;
    do await new Promise((r) => setTimeout(r, 100));
    while (last !== undefined && readKmsgCursor(join(stateDir, 'kmsg-cursor.json'))?.seq !== last && Date.now() < deadline);
    await new Promise((r) => setTimeout(r, 100));
    host.stop();
    return out.map((e) => ({ xid: e.xid, ...(e.gpuIndex !== undefined ? { gpu: e.gpuIndex } : {}), ...(e.time ? { time: e.time } : {}) }));
  }

  it('reports an XID injected while the agent is down once after it starts, and nothing twice; a reboot starts over', async () => {
    const dir = tmp('gantry-simkernel-');
    await inject(dir, 'inject', 'xid', '13', '--gpu', '1');
    const first = await run(dir);
    expect(first.map((e) => [e.xid, e.gpu])).toEqual([[13, 1]]);
    // kmsg records carry the time since boot: the event gets the wall-clock time of the record.
    expect(Math.abs(first[0]!.time!.getTime() - Date.now())).toBeLessThan(5_000);

    await inject(dir, 'inject', 'xid', '79', '--gpu', '3'); // the agent is down
    expect((await run(dir)).map((e) => [e.xid, e.gpu])).toEqual([[79, 3]]);
    expect(await run(dir)).toEqual([]);
    // The GPU stays off the bus for the rest of the boot, whichever agent looks.
    const after = new SimulatedBackend({ seed: 7, kernel: new SimKernelRing(simKernelDir(dir)) });
    expect((await after.fingerprint()).map((g) => g.index)).toEqual([0, 1, 2, 4, 5, 6, 7]);

    await inject(dir, 'reboot');
    expect((await new SimulatedBackend({ seed: 7, kernel: new SimKernelRing(simKernelDir(dir)) }).fingerprint())).toHaveLength(8);
    await inject(dir, 'inject', 'xid', '48', '--gpu', '2');
    // Sequence numbers restarted at 0: the old cursor (seq 1) must not hide the new boot's records.
    await inject(dir, 'inject', 'xid', '31', '--gpu', '5');
    expect((await run(dir)).map((e) => e.xid)).toEqual([48, 31]);
    expect(await run(dir)).toEqual([]);
  });

  it('numbers records in order when several writers append', () => {
    const ring = new SimKernelRing(simKernelDir(tmp('gantry-simkernel-')));
    const a = new SimKernelRing(ring.dir);
    expect(ring.lastSeq()).toBeUndefined();
    expect([ring.append(6, 'one'), a.append(6, 'two'), ring.append(6, 'three')]).toEqual([0, 1, 2]);
    expect(a.lastSeq()).toBe(2);
    expect(existsSync(join(ring.dir, 'lock'))).toBe(false);
  });
});
