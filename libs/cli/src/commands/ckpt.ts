// `gantry ckpt list JOB` and `gantry ckpt show ID`: a job's checkpoints as the checkpoint
// service records them (found on disk by the agent, reported by training code, or registered
// through the SDK): format, step, size, files, state and why. Talks to the checkpoint service,
// not the gateway: --checkpoint-addr, else $GANTRY_CHECKPOINT_ADDR, else 127.0.0.1:7072.
import type { Command } from 'commander';
import { Checkpoint, CheckpointEvent, ListCheckpointsResponse } from '@gantry/proto';
import { CheckpointClient, checkpointFormatName, checkpointStateName } from '@gantry/sdk';
import { fields, formatAge, table } from '../format.js';
import type { Session } from '../session.js';

const DEFAULT_CHECKPOINT_ADDR = '127.0.0.1:7072';
/** Files listed by `show` before "... and N more". */
const FILES_SHOWN = 50;

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

const fmt = (c: Checkpoint) => (c.source === 'client' ? '-' : checkpointFormatName(c.format) + (c.variant ? `/${c.variant}` : ''));

export function checkpointTable(cks: Checkpoint[], now: Date): string {
  if (cks.length === 0) return 'no checkpoints';
  return table(
    ['ID', 'STEP', 'STATE', 'FORMAT', 'SIZE', 'FILES', 'ATTEMPT', 'UPDATED', 'PATH', 'REASON'],
    cks.map((c) => [c.id, String(c.step), checkpointStateName(c.state), fmt(c), humanBytes(c.bytes), String(c.files.length || c.shardsReported.length), String(c.attempt), formatAge(c.updatedAt, now), c.path, c.reason || '-']),
  );
}

export function checkpointDetail(c: Checkpoint, events: CheckpointEvent[], now: Date): string {
  const out = [fields([
    ['ID', c.id],
    ['Job', `${c.jobId} (attempt ${c.attempt})`],
    ['State', checkpointStateName(c.state)],
    ...(c.reason ? [['Reason', c.reason] as [string, string]] : []),
    ['Step', String(c.step)],
    ['Format', fmt(c)],
    ['Path', c.path],
    ['Size', `${humanBytes(c.bytes)} (${c.bytes} bytes)`],
    ['Source', c.source === 'client' ? `client (${c.shardsReported.length} of ${c.shardCount} shards reported)` : `${c.source} on ${c.node || '?'}`],
    ['Created', formatAge(c.createdAt, now)],
    ['Committed', c.committedAt ? formatAge(c.committedAt, now) : '-'],
    ['State since', formatAge(c.updatedAt, now)],
  ])];
  if (c.files.length) {
    out.push('', `Files (${c.files.length}):`);
    out.push(table(['PATH', 'SIZE', 'SHA256'], c.files.slice(0, FILES_SHOWN).map((f) => [f.path, String(f.size), f.sha256 ? f.sha256.slice(0, 16) : '-']), '  '));
    if (c.files.length > FILES_SHOWN) out.push(`  ... and ${c.files.length - FILES_SHOWN} more`);
  }
  const mine = events.filter((e) => e.checkpointId === c.id);
  if (mine.length) {
    out.push('', 'Events:');
    for (const e of mine) out.push(`  ${formatAge(e.time, now).padEnd(10)} ${e.kind.padEnd(16)} ${e.message}`);
  }
  return out.join('\n');
}

/** The job id inside a checkpoint id (ck-<job>-<step>-<n>), for the events of `show`. */
function jobOf(id: string): string {
  return id.replace(/^ck-/, '').replace(/-[0-9]+-[0-9]+$/, '');
}

export function addCheckpointCommands(program: Command, session: Session): void {
  const ckpt = program.command('ckpt').description("a job's checkpoints: format, step, size, files, state and reason");
  // --ca/--cert/--key apply here too: with internal mutual TLS the service wants a client certificate of the internal CA.
  const client = (o: { checkpointAddr?: string }) => {
    const tls = session.tls();
    return new CheckpointClient({ address: o.checkpointAddr ?? session.io.env.GANTRY_CHECKPOINT_ADDR ?? DEFAULT_CHECKPOINT_ADDR, ...(tls !== undefined && { tls }) });
  };
  const addrOption = `checkpoint service address (default: $GANTRY_CHECKPOINT_ADDR, else ${DEFAULT_CHECKPOINT_ADDR})`;

  ckpt
    .command('list <job>')
    .description("the job's checkpoints by step; only COMMITTED ones are offered for resume")
    .option('--committed', 'only COMMITTED checkpoints')
    .option('--checkpoint-addr <host:port>', addrOption)
    .action(async (job: string, o: { committed?: boolean; checkpointAddr?: string }) => {
      const c = client(o);
      try {
        const checkpoints = await c.listCheckpoints(job, { committedOnly: !!o.committed });
        if (session.json) return session.printJson(ListCheckpointsResponse.toJSON({ checkpoints }));
        session.out(checkpointTable(checkpoints, session.now()));
      } finally {
        c.close();
      }
    });

  ckpt
    .command('show <id>')
    .description('one checkpoint: its manifest (files and sizes), state, reason and events')
    .option('--checkpoint-addr <host:port>', addrOption)
    .action(async (id: string, o: { checkpointAddr?: string }) => {
      const c = client(o);
      try {
        const checkpoint = await c.getCheckpoint(id);
        const events = await c.listCheckpointEvents(checkpoint.jobId || jobOf(id)).catch(() => [] as CheckpointEvent[]);
        if (session.json) return session.printJson({ checkpoint: Checkpoint.toJSON(checkpoint), events: events.filter((e) => e.checkpointId === id).map((e) => CheckpointEvent.toJSON(e)) });
        session.out(checkpointDetail(checkpoint, events, session.now()));
      } finally {
        c.close();
      }
    });
}
