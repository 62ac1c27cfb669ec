// `gantry storage show [TARGET]`: each storage target with its pools (limit, leases, waiters),
// capacity, health, the NFS telemetry and controller decision behind the current limit, and
// who holds or waits for a lease. Talks to the checkpoint service (StorageService), not the
// gateway: --checkpoint-addr, else $GANTRY_CHECKPOINT_ADDR, else 127.0.0.1:7072.
import type { Command } from 'commander';
import { ListStorageTargetsResponse, StorageLeaseMode, type StoragePool, type StorageTarget } from '@gantry/proto';
import { StorageClient } from '@gantry/sdk';
import type { Session } from '../session.js';

const DEFAULT_CHECKPOINT_ADDR = '127.0.0.1:7072';

const gbs = (b: number) => `${(b / 1e9).toFixed(b >= 10e9 ? 0 : 1)} GB/s`;
const mode = (m: StorageLeaseMode) => (m === StorageLeaseMode.STORAGE_LEASE_MODE_WRITE ? 'write' : m === StorageLeaseMode.STORAGE_LEASE_MODE_READ ? 'read' : '?');

function ago(d: Date | undefined, now: Date): string {
  if (!d) return '-';
  const s = Math.round((now.getTime() - d.getTime()) / 1000);
  return s < 0 ? `in ${-s}s` : `${s}s ago`;
}

function poolLine(p: StoragePool | undefined): string {
  if (!p) return '-';
  return `${p.leases}/${p.limit} leased (min ${p.min}, max ${p.max}${p.perNode ? `, ${p.perNode} per node` : ''}), ${p.waiters} waiting; ${p.reason}`;
}

export function storageView(targets: StorageTarget[], now: Date): string {
  if (targets.length === 0) return 'no storage targets configured (STORAGE_TARGETS on the checkpoint service)';
  const out: string[] = [];
  for (const t of targets) {
    out.push(`${t.name}  ${t.mountPrefix}  (${t.serverExport})${t.degraded ? '  DEGRADED (health: shared storage fault)' : ''}`);
    out.push(`  capacity   write ${gbs(t.writeBytesPerSecond)}, read ${gbs(t.readBytesPerSecond)}, ${t.rpcSlots} RPC slots per client, lease TTL ${t.leaseTtlMs / 1000}s`);
    out.push(`  write      ${poolLine(t.writePool)}`);
    out.push(`  read       ${poolLine(t.readPool)}`);
    const m = t.telemetry;
    out.push(m
      ? `  telemetry  ${m.nodes} nodes, backlog ${m.backlogQueueLength.toFixed(1)}, RTT ${m.avgRttMs.toFixed(1)} ms, slots ${(m.slotTableUtilization * 100).toFixed(0)}% used, write ${gbs(m.writeBytesPerSecond)}, read ${gbs(m.readBytesPerSecond)} (${ago(m.observedAt, now)})`
      : '  telemetry  none yet');
    if (t.leases.length) {
      out.push('  LEASE                              MODE   NODE              EXPIRES');
      for (const l of t.leases) out.push(`  ${l.id.padEnd(34)} ${mode(l.mode).padEnd(6)} ${(l.holder?.node || '-').padEnd(17)} ${ago(l.expiresAt, now)}`);
    }
    if (t.waiters.length) {
      out.push('  WAITING  JOB                      ATTEMPT  RANK  MODE   SINCE');
      for (const w of t.waiters) out.push(`  ${String(w.position).padEnd(8)} ${(w.holder?.jobId ?? '').padEnd(24)} ${String(w.holder?.attempt ?? '').padEnd(8)} ${String(w.holder?.rank ?? '').padEnd(5)} ${mode(w.mode).padEnd(6)} ${ago(w.since, now)}`);
    }
  }
  return out.join('\n');
}

export function addStorageCommands(program: Command, session: Session): void {
  const storage = program.command('storage').description('storage admission: targets, lease pools, the telemetry behind their size');
  storage
    .command('show [target]')
    .description('each storage target (or one) with its leases, waiters, capacity and the telemetry behind the current limit')
    .option('--checkpoint-addr <host:port>', `checkpoint service address (default: $GANTRY_CHECKPOINT_ADDR, else ${DEFAULT_CHECKPOINT_ADDR})`)
    .action(async (name: string | undefined, opts: { checkpointAddr?: string }) => {
      const tls = session.tls(); // a client certificate of the internal CA, with internal mutual TLS
      const client = new StorageClient({ address: opts.checkpointAddr ?? session.io.env.GANTRY_CHECKPOINT_ADDR ?? DEFAULT_CHECKPOINT_ADDR, ...(tls !== undefined && { tls }) });
      try {
        const targets = name ? [await client.getTarget(name)] : await client.listTargets();
        if (session.json) session.printJson(ListStorageTargetsResponse.toJSON({ targets }));
        else session.out(storageView(targets, session.now()));
      } finally {
        client.close();
      }
    });
}
