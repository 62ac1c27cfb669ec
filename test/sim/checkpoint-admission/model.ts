// A discrete-event queueing model of checkpoint traffic on one NFS server (see README.md here
// and docs/storage.md for what it models and what it does not).
//
//   rank --(page cache / readahead window)--> node RPC transport: slot table (128), backlog
//        --(node NIC, FIFO at nicBytesPerSecond)--> network (half the base RTT)
//        --> server: one FIFO queue drained at the phase's bandwidth (250 GB/s write, 700 GB/s
//            read) --> network (other half) --> reply frees the slot, the next backlogged RPC
//            takes it
//
// Per RPC it records what the kernel's mountstats record: queue (creation to transmission,
// i.e. backlog wait), RTT (transmission to reply) and execute (both). Per node and interval it
// produces the NfsMountRates the agent derives from mountstats (ops, average RTT, bytes, the
// backlog and in-flight sums sampled at every send), as TelemetryBatches.
//
// Admission (the "admitted" arm) is not modelled here: it is the storage service's own code,
// passed in as `admission` (test/sim/checkpoint-admission/bench.ts wires the real Redis lease
// store and the real AIMD step into it).
import { TelemetryBatch } from '@gantry/proto';

export interface ModelParams {
  nodes: number;
  ranksPerNode: number;
  /** Bytes each rank writes (save) or reads (restart). */
  bytesPerRank: number;
  /** wsize / rsize. */
  rpcBytes: number;
  /** RPC slot table entries per node (sunrpc.tcp_slot_table_entries). */
  slots: number;
  /** RPCs a rank keeps outstanding (dirty writeback window, or readahead window). */
  windowRpcs: number;
  serverBytesPerSecond: number;
  nicBytesPerSecond: number;
  /** Network + server per-op time of one RPC without queueing, round trip. */
  baseRttMs: number;
  /** Ranks reach the checkpoint within [0, jitter). */
  arrivalJitterMs: number;
  /** How often nodes report telemetry (and the controller steps). */
  telemetryIntervalMs: number;
  seed: number;
  mountpoint: string;
}

export interface Admission {
  /** A rank reached the checkpoint: true when it may start at once. */
  arrive(rank: RankRef, nowMs: number): Promise<boolean>;
  /** A rank finished; returns the ranks that may start now. */
  finished(rank: RankRef, nowMs: number): Promise<RankRef[]>;
  /** Telemetry of one interval; returns the ranks that may start now. */
  control(batches: TelemetryBatch[], nowMs: number): Promise<RankRef[]>;
}

export interface RankRef {
  rank: number;
  node: number;
}

export interface PhaseResult {
  totalMs: number;
  p50ExecMs: number;
  p99ExecMs: number;
  p99RttMs: number;
  peakBacklog: number;
  peakNodeBacklog: number;
  /** Per node: from the checkpoint start until its last rank finished. */
  stallMeanMs: number;
  stallMaxMs: number;
  throughputGBs: number;
  rpcs: number;
}

/** mulberry32: small, seeded, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ARRIVE = 0, SERVER = 1, DONE = 2, CONTROL = 3;

interface Rpc { rank: number; node: number; created: number; sent: number }
interface Ev { t: number; seq: number; kind: number; rank: number; rpc: Rpc | undefined }

class EventQueue {
  private h: Ev[] = [];
  private seq = 0;
  get size() { return this.h.length; }
  push(t: number, kind: number, rank = -1, rpc?: Rpc) {
    const e: Ev = { t, seq: this.seq++, kind, rank, rpc };
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, e)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }
  pop(): Ev {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && less(h[r]!, h[l]!) ? r : l;
        if (less(last, h[c]!)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
const less = (a: Ev, b: Ev) => a.t < b.t || (a.t === b.t && a.seq < b.seq);

interface NodeState {
  slotsUsed: number;
  backlog: Rpc[];
  backlogHead: number;
  nicFree: number;
  // telemetry of the current interval
  ops: number; rttSum: number; queueSum: number; bytes: number; sends: number; backlogSum: number; inflightSum: number;
}

function percentile(values: Float64Array, n: number, p: number): number {
  if (n === 0) return 0;
  const sorted = values.slice(0, n).sort();
  return sorted[Math.min(n - 1, Math.floor(p * n))]!;
}

/** Runs one phase (every rank saves, or every rank restores) to the last byte. */
export async function runPhase(p: ModelParams, mode: 'write' | 'read', admission?: Admission): Promise<PhaseResult> {
  const rand = rng(p.seed);
  const ranks = p.nodes * p.ranksPerNode;
  const rpcsPerRank = Math.ceil(p.bytesPerRank / p.rpcBytes);
  const remaining = new Int32Array(ranks).fill(rpcsPerRank);
  const outstanding = new Int32Array(ranks);
  const doneAt = new Float64Array(ranks);
  const nodes: NodeState[] = Array.from({ length: p.nodes }, () => ({
    slotsUsed: 0, backlog: [], backlogHead: 0, nicFree: 0, ops: 0, rttSum: 0, queueSum: 0, bytes: 0, sends: 0, backlogSum: 0, inflightSum: 0,
  }));
  const total = ranks * rpcsPerRank;
  const exec = new Float64Array(total);
  const rtt = new Float64Array(total);
  let completed = 0;
  let ranksDone = 0;
  let backlogTotal = 0;
  let peakBacklog = 0;
  let peakNodeBacklog = 0;
  let serverFree = 0;
  const nicMs = (p.rpcBytes / p.nicBytesPerSecond) * 1000;
  const serviceMs = (p.rpcBytes / p.serverBytesPerSecond) * 1000;
  const half = p.baseRttMs / 2;
  const q = new EventQueue();
  let now = 0;

  const send = (n: NodeState, nodeIdx: number, rpc: Rpc) => {
    n.slotsUsed++;
    rpc.sent = now;
    n.sends++;
    n.backlogSum += n.backlog.length - n.backlogHead;
    n.inflightSum += n.slotsUsed;
    n.nicFree = Math.max(n.nicFree, now) + nicMs;
    q.push(n.nicFree + half, SERVER, rpc.rank, rpc);
    void nodeIdx;
  };
  const issue = (rank: number) => {
    const nodeIdx = Math.floor(rank / p.ranksPerNode);
    const n = nodes[nodeIdx]!;
    while (outstanding[rank]! < p.windowRpcs && remaining[rank]! > 0) {
      remaining[rank]!--;
      outstanding[rank]!++;
      const rpc: Rpc = { rank, node: nodeIdx, created: now, sent: -1 };
      if (n.slotsUsed < p.slots) send(n, nodeIdx, rpc);
      else {
        n.backlog.push(rpc);
        backlogTotal++;
        peakBacklog = Math.max(peakBacklog, backlogTotal);
        peakNodeBacklog = Math.max(peakNodeBacklog, n.backlog.length - n.backlogHead);
      }
    }
  };
  const start = (refs: RankRef[]) => {
    for (const r of refs) issue(r.rank);
  };

  for (let r = 0; r < ranks; r++) q.push(rand() * p.arrivalJitterMs, ARRIVE, r);
  if (admission) q.push(p.telemetryIntervalMs, CONTROL);

  while (ranksDone < ranks && q.size > 0) {
    const e = q.pop();
    now = e.t;
    if (e.kind === ARRIVE) {
      const ref = { rank: e.rank, node: Math.floor(e.rank / p.ranksPerNode) };
      if (!admission || (await admission.arrive(ref, now))) issue(e.rank);
    } else if (e.kind === SERVER) {
      serverFree = Math.max(serverFree, now) + serviceMs;
      q.push(serverFree + half, DONE, e.rank, e.rpc);
    } else if (e.kind === DONE) {
      const rpc = e.rpc!;
      const n = nodes[rpc.node]!;
      exec[completed] = now - rpc.created;
      rtt[completed] = now - rpc.sent;
      completed++;
      n.ops++;
      n.rttSum += now - rpc.sent;
      n.queueSum += rpc.sent - rpc.created;
      n.bytes += p.rpcBytes;
      n.slotsUsed--;
      if (n.backlogHead < n.backlog.length) {
        const next = n.backlog[n.backlogHead++]!;
        backlogTotal--;
        if (n.backlogHead > 4096) { n.backlog = n.backlog.slice(n.backlogHead); n.backlogHead = 0; }
        send(n, rpc.node, next);
      }
      outstanding[rpc.rank]!--;
      if (remaining[rpc.rank]! > 0) issue(rpc.rank);
      else if (outstanding[rpc.rank] === 0) {
        doneAt[rpc.rank] = now;
        ranksDone++;
        if (admission) start(await admission.finished({ rank: rpc.rank, node: rpc.node }, now));
      }
    } else if (e.kind === CONTROL) {
      const secs = p.telemetryIntervalMs / 1000;
      const batches = nodes.map((n, i) => {
        const b = TelemetryBatch.fromPartial({
          node: `sim-${i}`,
          nfsMounts: [{
            device: 'nfs-sim:/export/ckpt', mountpoint: p.mountpoint, fstype: 'nfs4',
            rates: {
              [mode === 'write' ? 'writeBytesPerSecond' : 'readBytesPerSecond']: n.bytes / secs,
              opsPerSecond: n.ops / secs,
              backlogQueueLength: n.sends ? n.backlogSum / n.sends : 0,
              inflightRequests: n.sends ? n.inflightSum / n.sends : 0,
              slotTableUtilization: n.sends ? n.inflightSum / n.sends / p.slots : 0,
              ops: n.ops ? [{ op: mode === 'write' ? 'WRITE' : 'READ', opsPerSecond: n.ops / secs, avgRttMs: n.rttSum / n.ops, avgQueueMs: n.queueSum / n.ops }] : [],
            },
          }],
        });
        Object.assign(n, { ops: 0, rttSum: 0, queueSum: 0, bytes: 0, sends: 0, backlogSum: 0, inflightSum: 0 });
        return b;
      });
      start(await admission!.control(batches, now));
      q.push(now + p.telemetryIntervalMs, CONTROL);
    }
  }
  if (ranksDone < ranks) throw new Error(`model stalled: ${ranksDone}/${ranks} ranks finished`);
  const totalMs = Math.max(...doneAt);
  const stall = Array.from({ length: p.nodes }, (_, i) => Math.max(...doneAt.slice(i * p.ranksPerNode, (i + 1) * p.ranksPerNode)));
  return {
    totalMs,
    p50ExecMs: percentile(exec, completed, 0.5),
    p99ExecMs: percentile(exec, completed, 0.99),
    p99RttMs: percentile(rtt, completed, 0.99),
    peakBacklog,
    peakNodeBacklog,
    stallMeanMs: stall.reduce((a, b) => a + b, 0) / stall.length,
    stallMaxMs: Math.max(...stall),
    throughputGBs: (ranks * rpcsPerRank * p.rpcBytes) / (totalMs / 1000) / 1e9,
    rpcs: completed,
  };
}
