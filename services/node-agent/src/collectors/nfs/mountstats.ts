// Parser for /proc/self/mountstats (NFS client statistics). Field meanings follow the
// kernel's printers (fs/nfs/super.c nfs_show_stats, net/sunrpc/stats.c rpc_print_iostats,
// xprtsock.c / xprtrdma print_stats), which nfs-utils' mountstats.py also follows. Lines
// the parser does not know are skipped; fields a version does not print stay undefined.
import { parseCounter } from '../counters.js';

export interface NfsOpStats {
  op: string;
  ops: number;
  transmissions: number;
  majorTimeouts: number;
  bytesSent: number;
  bytesReceived: number;
  /** Cumulative ms; may be negative (see parseCounter). */
  queueMs: number;
  rttMs: number;
  executeMs: number;
  /** Ops that completed with an error status (kernels >= 5.3 print a 9th column). */
  errors?: number;
}

export type NfsTransportProtocol = 'tcp' | 'udp' | 'rdma' | string;

export interface NfsTransportStats {
  protocol: NfsTransportProtocol;
  port?: number;
  bindCount?: number;
  connectCount?: number;
  connectTime?: number;
  idleTime?: number;
  sends?: number;
  receives?: number;
  badXids?: number;
  /** Sum over sends of requests in flight at that send (kernel req_u). */
  inflightSum?: number;
  /** Sum over sends of the backlog queue length (kernel bklog_u). */
  backlogSum?: number;
  /** High-water mark of request slots in use (statvers 1.1+, tcp/udp). */
  maxSlots?: number;
  sendingSum?: number;
  pendingSum?: number;
  /** rdma chunk/registration counters and anything beyond the known columns. */
  extra: Record<string, number>;
}

export interface NfsMountStats {
  device: string;
  mountpoint: string;
  fstype: string;
  statvers?: string;
  opts: Record<string, string | true>;
  ageSeconds?: number;
  events: Record<string, number>;
  bytes: Record<string, number>;
  transport?: NfsTransportStats;
  ops: Map<string, NfsOpStats>;
}

const EVENT_NAMES = [
  'inoderevalidate', 'dentryrevalidate', 'datainvalidate', 'attrinvalidate', 'vfsopen', 'vfslookup',
  'vfsaccess', 'vfsupdatepage', 'vfsreadpage', 'vfsreadpages', 'vfswritepage', 'vfswritepages',
  'vfsgetdents', 'vfssetattr', 'vfsflush', 'vfsfsync', 'vfslock', 'vfsrelease', 'congestionwait',
  'setattrtrunc', 'extendwrite', 'sillyrename', 'shortreads', 'shortwrites', 'delay', 'pnfsread', 'pnfswrite',
];

const BYTE_NAMES = [
  'normalReadBytes', 'normalWriteBytes', 'directReadBytes', 'directWriteBytes',
  'serverReadBytes', 'serverWriteBytes', 'readPages', 'writePages',
];

// Column order after the protocol word. The tcp and udp lines gained max_slots, sending_u
// and pending_u in statvers 1.1; rdma has its own tail.
const XPRT_COLUMNS: Record<string, readonly string[]> = {
  tcp: ['port', 'bindCount', 'connectCount', 'connectTime', 'idleTime', 'sends', 'receives', 'badXids',
    'inflightSum', 'backlogSum', 'maxSlots', 'sendingSum', 'pendingSum'],
  udp: ['port', 'bindCount', 'sends', 'receives', 'badXids', 'inflightSum', 'backlogSum', 'maxSlots', 'sendingSum', 'pendingSum'],
  rdma: ['port', 'bindCount', 'connectCount', 'connectTime', 'idleTime', 'sends', 'receives', 'badXids',
    'inflightSum', 'backlogSum', 'read_chunks', 'write_chunks', 'reply_chunks', 'total_rdma_req', 'total_rdma_rep',
    'pullup', 'fixup', 'hardway', 'failed_marshal', 'bad_reply', 'nomsg_calls', 'mrs_recycled', 'mrs_orphaned',
    'mrs_allocated', 'local_inv_needed', 'empty_sendctx_q', 'reply_waits_for_send'],
};

const KNOWN_XPRT_KEYS = new Set(['port', 'bindCount', 'connectCount', 'connectTime', 'idleTime', 'sends', 'receives',
  'badXids', 'inflightSum', 'backlogSum', 'maxSlots', 'sendingSum', 'pendingSum']);

const DEVICE = /^device (.+?) mounted on (.+?) with fstype (\S+)(?: statvers=(\S+))?\s*$/;

export function isNfsFstype(fstype: string): boolean {
  return fstype === 'nfs' || fstype === 'nfs4';
}

function numbers(text: string): number[] {
  const out: number[] = [];
  for (const w of text.trim().split(/\s+/)) {
    const n = parseCounter(w);
    if (n === undefined) return out;
    out.push(n);
  }
  return out;
}

export function parseXprtLine(rest: string): NfsTransportStats | undefined {
  const words = rest.trim().split(/\s+/);
  const protocol = words.shift();
  if (!protocol) return undefined;
  const columns = XPRT_COLUMNS[protocol] ?? [];
  const t: NfsTransportStats = { protocol, extra: {} };
  const rec = t as unknown as Record<string, number>;
  for (let i = 0; i < words.length; i++) {
    const n = parseCounter(words[i]!);
    if (n === undefined) continue;
    const name = columns[i] ?? `field_${i + 1}`;
    if (KNOWN_XPRT_KEYS.has(name)) rec[name] = n;
    else t.extra[name] = n;
  }
  return t;
}

function parseOpLine(name: string, rest: string): NfsOpStats | undefined {
  const f = numbers(rest);
  if (f.length < 8) return undefined;
  const op: NfsOpStats = {
    op: name, ops: f[0]!, transmissions: f[1]!, majorTimeouts: f[2]!, bytesSent: f[3]!, bytesReceived: f[4]!,
    queueMs: f[5]!, rttMs: f[6]!, executeMs: f[7]!,
  };
  if (f.length >= 9) op.errors = f[8]!;
  return op;
}

function parseOpts(text: string): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (const kv of text.split(',')) {
    if (kv === '') continue;
    const i = kv.indexOf('=');
    if (i < 0) out[kv] = true;
    else out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

// Mount paths escape space, tab, newline and backslash as octal (\040).
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** All NFS mounts in a mountstats text (other filesystems are skipped). Never throws. */
export function parseMountstats(text: string): NfsMountStats[] {
  const out: NfsMountStats[] = [];
  let cur: NfsMountStats | undefined;
  let inOps = false;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('device ')) {
      inOps = false;
      cur = undefined;
      const m = DEVICE.exec(line);
      if (!m || !isNfsFstype(m[3]!)) continue;
      cur = {
        device: unescapeMountPath(m[1]!.trim()), mountpoint: unescapeMountPath(m[2]!.trim()), fstype: m[3]!,
        opts: {}, events: {}, bytes: {}, ops: new Map(),
        ...(m[4] ? { statvers: m[4] } : {}),
      };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (trimmed === 'per-op statistics') {
      inOps = true;
      continue;
    }
    const colon = trimmed.indexOf(':');
    if (colon <= 0) continue;
    const key = trimmed.slice(0, colon);
    const rest = trimmed.slice(colon + 1);
    if (inOps && /^[A-Z][A-Z0-9_]*$/.test(key)) {
      const op = parseOpLine(key, rest);
      if (op) cur.ops.set(key, op);
      continue;
    }
    switch (key) {
      case 'opts': cur.opts = parseOpts(rest.trim()); break;
      case 'age': {
        const a = parseCounter(rest.trim());
        if (a !== undefined) cur.ageSeconds = a;
        break;
      }
      case 'events': numbers(rest).forEach((n, i) => { cur!.events[EVENT_NAMES[i] ?? `event_${i + 1}`] = n; }); break;
      case 'bytes': numbers(rest).forEach((n, i) => { cur!.bytes[BYTE_NAMES[i] ?? `bytes_${i + 1}`] = n; }); break;
      case 'xprt': {
        const t = parseXprtLine(rest);
        if (t) cur.transport = t;
        break;
      }
      default: break;
    }
  }
  return out;
}
