// A discrete-event queueing model of checkpoint traffic on one NFS server (README.md here and
// docs/storage.md say what it models and what it does not).
//
//   save:    rank --dirties its shard in the page cache at dirtyBytesPerSecondPerRank-->
//            [background writeback, off by default: at most congestionRpcs WRITEs per node]
//            --> close/fsync flushes the rest at once (admitted: under a write lease taken
//            once the shard is in the page cache) --> node RPC transport: slot table (128),
//            FIFO backlog --(node NIC, FIFO)--> network (half the base RTT) --> server: one FIFO
//            queue drained at 250 GB/s --> network (other half) --> reply frees the slot
//   restart: rank --readahead: windowRpcs READs outstanding--> the same transport and server
//            (drained at 700 GB/s)
//
// Every assumption and its source (also in README.md):
//   - server bandwidth 250 GB/s write / 700 GB/s read, 128 RPC slots per client: the Lablup
//     504-GPU report (arXiv 2605.09370; shared/data/failures/published-failure-statistics.md).
//     128 is also xprtrdma's default slot table (RPCRDMA_DEF_SLOT_TABLE), NFS over RDMA on RoCE
//     being our reading of that setup, not stated by the report.
//   - the server loses no throughput to concurrency (one fair FIFO): no public measurement
//     gives a curve of NFS server throughput against concurrent writers, so none is invented.
//     This is generous to the uncoordinated arm: the report measured 16 % of write and 21.5 %
//     of read bandwidth in use while the slot tables saturated.
//   - 1 MiB RPCs: the Linux client's largest rsize/wsize.
//   - no background writeback during a save (the default): it starts only above
//     vm.dirty_background_ratio (10 % of memory, ~200 GB on a 2 TB GPU host, far above the
//     8 GiB a node dirties here) or for pages older than dirty_expire_centisecs (30 s). So the
//     close()/fsync() flush (WB_SYNC_ALL) hands the whole shard to the transport at once and it
//     waits in the backlog: the "RPC queueing and transport backlog rose together" of the
//     report, and its 93.1 % of WRITE latency spent queueing in the client. With
//     BENCH_BACKGROUND_WRITEBACK_RPCS=256 (a host tuned to write back early) the flusher runs
//     during the fill, capped at 256 WRITEs per node by fs/nfs nfs_congestion_kb (scaled with
//     RAM, 256 MiB at most by default); the flush at close is still not held back by it.
//   - an admitted writer fills the page cache before it asks (that is local memory, not the
//     storage) and holds its write lease for the flush only: with gantry_ckpt, write the file,
//     then `with admitted("write"): os.fsync(f.fileno())`, then close. A reader holds its
//     lease for the whole read.
//   - a rank dirties 4 GB/s: ASSUMPTION (serialising a state dict and copying it into the page
//     cache, one thread per rank); it bounds what one admitted writer moves.
//   - readahead 2 x 15 RPCs per reader: NFS_MAX_READAHEAD (RPC_DEF_SLOT_TABLE - 1 = 15 rsize)
//     per window, and mm/readahead.c keeps the current and the asynchronous next window in
//     flight on a sequential stream. 8 readers x 30 > 128 slots, as the report saw at restarts.
//   - node NIC 25 GB/s: the report's 200 Gbps RoCE links. Base RTT 0.5 ms, arrival jitter
//     0-20 ms: ASSUMPTIONS. Bytes per rank 1 GiB: SCALED (a 70B model with Adam is ~1 TB).
//   - RPC timeouts and retransmissions: not modelled, because they do not happen here. Over TCP
//     the Linux client's timeo is 60 s (nfs(5)), far above any RTT in this model (the server
//     queue, not the backlog, is inside the timed RTT), and NFSv4 over TCP retransmits only
//     after the connection breaks (RFC 7530 3.1.1).
//   - server nfsd threads: not modelled; they bound concurrency, and at 1 MiB per op a few dozen
//     threads outrun 250 GB/s, so they would not change either arm.
//
// Per RPC it records what mountstats records: queue (creation to transmission, i.e. backlog
// wait), RTT (transmission to reply) and execute (both). Per node and interval it produces the
// NfsMountRates the agent derives from mountstats (ops, average RTT, bytes, the backlog and
// in-flight sums sampled at every send), as TelemetryBatches.
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
  /** Read phase: RPCs a reader keeps outstanding (its readahead). */
  windowRpcs: number;
  /**
   * Write phase: how fast one rank fills the page cache with its shard (serialise + copy into
   * dirty pages); the save call returns, and close() flushes what is still dirty, when it is all in.
   */
  dirtyBytesPerSecondPerRank: number;
  /**
   * Write phase: the mount's background-writeback cap (nfs_congestion_kb / wsize): flusher
   * writeback stops submitting WRITEs while this many are outstanding on the node. The flush at
   * close/fsync (WB_SYNC_ALL) is not held back by it.
   */
  congestionRpcs: number;
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

const ARRIVE = 0, SERVER = 1, DONE = 2, CONTROL = 3, DIRTY = 4;

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
  /** Write phase: WRITEs submitted and not yet answered (slots + backlog). */
  writeback: number;
  /** Write phase: round-robin cursor over the node's ranks for the flusher. */
  cursor: number;
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
  // Write phase: chunks (one wsize each) dirtied and not yet submitted, and dirtied so far.
  const dirty = new Int32Array(ranks);
  const dirtied = new Int32Array(ranks);
  const dirtyMs = (p.rpcBytes / p.dirtyBytesPerSecondPerRank) * 1000;
  const nodes: NodeState[] = Array.from({ length: p.nodes }, () => ({
    writeback: 0, cursor: 0, slotsUsed: 0, backlog: [], backlogHead: 0, nicFree: 0, ops: 0, rttSum: 0, queueSum: 0, bytes: 0, sends: 0, backlogSum: 0, inflightSum: 0,
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
  /** One RPC of `rank` enters its node's transport: a free slot, else the FIFO backlog. */
  const enqueue = (rank: number) => {
    const nodeIdx = Math.floor(rank / p.ranksPerNode);
    const n = nodes[nodeIdx]!;
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
    return n;
  };
  /** Read phase: the reader keeps its readahead window full. */
  const issue = (rank: number) => {
    while (outstanding[rank]! < p.windowRpcs && remaining[rank]! > 0) enqueue(rank);
  };
  /** Write phase: one dirty chunk of `rank` becomes a WRITE RPC. */
  const submit = (rank: number) => {
    dirty[rank]!--;
    enqueue(rank).writeback++;
  };
  /** Write phase: the node's background writeback, round robin over its ranks, up to the cap. */
  const pump = (nodeIdx: number) => {
    const n = nodes[nodeIdx]!;
    const first = nodeIdx * p.ranksPerNode;
    let idle = 0;
    while (n.writeback < p.congestionRpcs && idle < p.ranksPerNode) {
      const r = first + n.cursor;
      n.cursor = (n.cursor + 1) % p.ranksPerNode;
      if (dirty[r]! > 0) { submit(r); idle = 0; } else idle++;
    }
  };
  /** Write phase: close()/fsync: every dirty page of the file goes out now, past the congestion cap. */
  const flush = (rank: number) => {
    while (dirty[rank]! > 0) submit(rank);
  };
  // Admitted: a reader takes its lease before it reads; a writer fills the page cache first (no
  // storage I/O, no lease needed) and takes its lease for the flush, released when it is done.
  const begin = (rank: number) => {
    if (mode === 'read') issue(rank);
    else flush(rank);
  };
  const start = (refs: RankRef[]) => {
    for (const r of refs) begin(r.rank);
  };

  for (let r = 0; r < ranks; r++) q.push(rand() * p.arrivalJitterMs, ARRIVE, r);
  if (admission) q.push(p.telemetryIntervalMs, CONTROL);

  while (ranksDone < ranks && q.size > 0) {
    const e = q.pop();
    now = e.t;
    if (e.kind === ARRIVE) {
      const ref = { rank: e.rank, node: Math.floor(e.rank / p.ranksPerNode) };
      if (mode === 'write') q.push(now + dirtyMs, DIRTY, e.rank);
      else if (!admission || (await admission.arrive(ref, now))) begin(e.rank);
    } else if (e.kind === DIRTY) {
      const r = e.rank;
      dirty[r]!++;
      dirtied[r]!++;
      if (dirtied[r]! < rpcsPerRank) {
        q.push(now + dirtyMs, DIRTY, r);
        pump(Math.floor(r / p.ranksPerNode));
      } else {
        const ref = { rank: r, node: Math.floor(r / p.ranksPerNode) };
        if (!admission || (await admission.arrive(ref, now))) flush(r);
      }
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
      if (mode === 'write') {
        n.writeback--;
        pump(rpc.node);
      }
      if (remaining[rpc.rank]! > 0) {
        if (mode === 'read') issue(rpc.rank);
      } else if (outstanding[rpc.rank] === 0) {
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
