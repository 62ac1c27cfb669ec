// The detector: (state, one window of input, config) → (next state, decisions). No I/O, no
// clock, no randomness: the scheduler, the evaluation (test/sim/detection) and the tests run
// this same code, and a replica that loads the state from Redis continues exactly where
// another stopped. Two entry points: evaluateHealth is pure (it works on a copy of the state
// it is given); HealthEvaluator owns its state and advances it in place, which spares a copy
// of every baseline per window (what a long-running caller wants).
//
// Per window:
//   1. operator actions (release, remediated, quarantine)              actions.ts
//   2. telemetry → signal values per node; heartbeat gaps; throughput  extract.ts, progress.ts
//      against the job's other nodes
//   3. per signal: z against the node's own baseline and its peers     scoring.ts, robust.ts
//   4. shared faults across nodes; their signals leave the hosts' score shared.ts
//   5. decayed evidence → score with reasons; baselines learn          scoring.ts
//   6. XIDs and missing GPUs → actions and holds                       actions.ts, xid-actions.ts
//   7. hysteresis; hangs and stragglers; lemons                        hysteresis.ts, progress.ts, lemon.ts
import type { TelemetryBatch, XidEvent } from '@gantry/proto';
import { applyMissing, applyOperator, applyXids, decayXidPoints, timeOf } from './actions.js';
import { DEFAULT_HEALTH_CONFIG, type HealthConfig } from './config.js';
import { extractNode, type NodeSample } from './extract.js';
import { stepHysteresis } from './hysteresis.js';
import { judgeLemon, recordIncident } from './lemon.js';
import { judgeProgress, throughputVsJob, type NodeProgress } from './progress.js';
import { decayFactor } from './robust.js';
import { PeerTable, peerGroup, scoreNode, updateEvidence, type Scored } from './scoring.js';
import { aggregateShared, attributeShared, type NodeGroupView } from './shared.js';
import { cloneHealthState, emptyHealthState, newNodeRecord, parseHealthState, serializeHealthState, type HealthState, type NodeRecord } from './state.js';
import type {
  HealthAction, HealthReason, HealthTransition, HealthWindowInput, LemonFlag, NodeDecision, ProgressFinding, SharedFaultFlag,
} from './types.js';

export interface HealthEvaluation {
  state: HealthState;
  /** Every judged node, by name. */
  nodes: NodeDecision[];
  /** All transitions of this window, in node order. */
  transitions: HealthTransition[];
  /** All XID / inventory actions of this window (restart-app included: recovery's cue). */
  actions: HealthAction[];
  /** Shared faults active now, or cleared in this window. */
  sharedFaults: SharedFaultFlag[];
  /** New hang and straggler findings (each reported once per episode). */
  findings: ProgressFinding[];
  lemons: LemonFlag[];
}

const REASON_CAP = 12;

function byNode<T extends { node: string }>(items: readonly T[] | undefined): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items ?? []) {
    const l = m.get(it.node);
    if (l) l.push(it);
    else m.set(it.node, [it]);
  }
  return m;
}

function fmt(n: number): string {
  return Math.abs(n) >= 100 || Number.isInteger(n) ? n.toFixed(0) : n.toPrecision(3);
}

/** Pure: the next state and decisions for one window; `prev` is not modified. */
export function evaluateHealth(prev: HealthState, input: HealthWindowInput, config: HealthConfig = DEFAULT_HEALTH_CONFIG): HealthEvaluation {
  return advanceHealth(cloneHealthState(prev), input, config);
}

interface NodeWork {
  name: string;
  rec: NodeRecord;
  sample: NodeSample;
  model: string | undefined;
  transitions: HealthTransition[];
  scored: Scored[];
}

/** What a window's steps share: its inputs by node and the nodes to judge, in order. */
interface WindowStart {
  now: number;
  windowStart: number;
  dtSec: number;
  batches: Map<string, TelemetryBatch[]>;
  xids: Map<string, XidEvent[]>;
  info: Map<string, NonNullable<HealthWindowInput['nodes']>[number]>;
  names: string[];
}

function beginWindow(state: HealthState, input: HealthWindowInput, config: HealthConfig): WindowStart {
  const now = input.nowMs;
  const windowStart = state.lastEvalMs !== undefined && state.lastEvalMs <= now ? state.lastEvalMs : now - config.windowSec * 1000;
  const batches = byNode(input.batches);
  const xids = byNode(input.xids);
  const info = new Map((input.nodes ?? []).map((n) => [n.name, n]));
  const names = input.nodes
    ? [...info.keys()].sort()
    : [...new Set([...Object.keys(state.nodes), ...batches.keys(), ...xids.keys(), ...Object.keys(input.heartbeats ?? {})])].sort();
  return { now, windowStart, dtSec: (now - windowStart) / 1000, batches, xids, info, names };
}

/** Step 1-2 for one node: its record, operator actions, telemetry → values. */
function prepareOne(win: WindowStart, state: HealthState, input: HealthWindowInput, config: HealthConfig, name: string): NodeWork {
  return prepareNode(name, state.nodes[name], win.batches.get(name) ?? [], input, win.info.get(name)?.gpuUuids, config);
}

/** Advances `state` in place by one window and returns it with the decisions. */
export function advanceHealth(state: HealthState, input: HealthWindowInput, config: HealthConfig = DEFAULT_HEALTH_CONFIG): HealthEvaluation {
  const win = beginWindow(state, input, config);
  return finishWindow(state, input, config, win, win.names.map((name) => prepareOne(win, state, input, config, name)));
}

/** How advanceHealthInSteps gets its telemetry and gives the event loop back. */
export interface WindowSteps {
  /** Nodes per step (500). */
  size?: number;
  /** Awaited after each step. */
  pause: () => Promise<void>;
  /**
   * The window's batches of these nodes, read when their step comes (input.batches is then
   * not used; input.nodes lists the nodes). Only one step's decoded batches are alive at a
   * time, not the whole window's (60,000 at 10,000 nodes).
   */
  batchesOf?: (names: readonly string[]) => Promise<TelemetryBatch[]>;
}

/**
 * advanceHealth with its per-node telemetry step (most of a window's work: extracting every
 * batch's values) done a step of nodes at a time, awaiting between: the scheduler's event loop
 * runs heartbeats and lease renewals meanwhile (10,000 nodes took it seconds in one stretch).
 * The same result as advanceHealth.
 */
export async function advanceHealthInSteps(state: HealthState, input: HealthWindowInput, config: HealthConfig, steps: WindowSteps): Promise<HealthEvaluation> {
  const win = beginWindow(state, input, config);
  const size = steps.size ?? 500;
  const work: NodeWork[] = [];
  for (let i = 0; i < win.names.length; i += size) {
    const names = win.names.slice(i, i + size);
    if (steps.batchesOf) win.batches = byNode(await steps.batchesOf(names));
    for (const name of names) work.push(prepareOne(win, state, input, config, name));
    await steps.pause();
  }
  return finishWindow(state, input, config, win, work);
}

/** Steps 3-7 for all nodes at once (peers, shared faults and progress compare nodes). */
function finishWindow(state: HealthState, input: HealthWindowInput, config: HealthConfig, win: WindowStart, work: NodeWork[]): HealthEvaluation {
  const { now, windowStart, dtSec, xids, info } = win;
  const segment = (n: string): string => info.get(n)?.leafSwitch || 'cluster';
  const byName = new Map(work.map((w) => [w.name, w]));
  const jobs = input.jobs ?? [];
  for (const [n, v] of throughputVsJob(jobs, new Map(work.map((w) => [w.name, w.sample.throughput])), config)) byName.get(n)?.sample.values.set('gpu.util_vs_job', { value: v });

  // 3. Peers, z-scores.
  const peers = new PeerTable(config.peers.minPeers);
  for (const w of work) for (const [key, v] of w.sample.values) peers.add(peerGroup(w.model, key), key, v.value);
  for (const w of work) w.scored = scoreNode(w.rec, w.sample.values, w.model, peers, config);

  // 4. Shared faults.
  const views: NodeGroupView[] = work.map((w) => groupView(w, segment(w.name), input.heartbeats?.[w.name] !== undefined));
  const shared = aggregateShared(views, state.shared, now, config);
  attributeShared(new Map(work.map((w) => [w.name, w.scored])), (n, k) => byName.get(n)?.sample.values.get(k)?.value, segment, shared.active, config);

  // 5-7. Evidence and score, XIDs, missing GPUs, hysteresis.
  const decay = decayFactor(dtSec, config.deviation.halfLifeSec);
  const xidDecay = decayFactor(dtSec, config.xid.halfLifeSec);
  const decisions = work.map((w) => decideNode(w, xids.get(w.name) ?? [], now, decay, xidDecay, config));

  // Hangs and stragglers, with the statuses just decided.
  const progressViews = new Map<string, NodeProgress>(work.map((w) => [w.name, progressView(w, segment(w.name))]));
  const progress = judgeProgress(jobs, progressViews, state.jobs, new Set(shared.active.keys()), windowStart, now, config);
  // A named hang or straggler is an incident unless the node is already out (same episode).
  for (const f of progress.findings) {
    const w = f.node ? byName.get(f.node) : undefined;
    if (w && w.rec.status === 'READY') recordIncident(w.rec, now, f.kind, `${f.kind} in job ${f.job}`);
  }

  const lemons: LemonFlag[] = [];
  const nodes: Record<string, NodeRecord> = {};
  for (const d of decisions) {
    const rec = byName.get(d.node)!.rec;
    d.lemon = judgeLemon(rec, now, config);
    if (d.lemon) lemons.push({ node: d.node, sinceMs: rec.lemonSinceMs!, incidents: rec.incidents.map((i) => ({ ...i })) });
    nodes[d.node] = rec;
  }
  // Nodes no longer listed are dropped with their baselines.
  state.version = state.version ?? emptyHealthState().version;
  state.lastEvalMs = now;
  state.nodes = nodes;
  state.shared = shared.records;
  state.jobs = progress.jobs;
  return {
    state, nodes: decisions, transitions: decisions.flatMap((d) => d.transitions), actions: decisions.flatMap((d) => d.actions),
    sharedFaults: shared.flags, findings: progress.findings, lemons,
  };
}

function prepareNode(
  name: string, prev: NodeRecord | undefined, bs: TelemetryBatch[], input: HealthWindowInput, registered: readonly string[] | undefined, config: HealthConfig,
): NodeWork {
  const now = input.nowMs;
  const rec = prev ?? newNodeRecord(now);
  const transitions: HealthTransition[] = [];
  applyOperator(rec, name, input, transitions);
  bs.sort((a, b) => timeOf(a, 0) - timeOf(b, 0));
  const sample = extractNode(bs, rec, config, registered);
  if (sample.lastBatchMs !== undefined) rec.lastBatchMs = sample.lastBatchMs;
  const hb = input.heartbeats?.[name];
  if (hb) sample.values.set('heartbeat.gap_seconds', { value: Math.max(0, hb.longestGapMs ?? 0, now - hb.lastSeenMs) / 1000 });
  return { name, rec, sample, model: bs[bs.length - 1]?.gpus[0]?.name, transitions, scored: [] };
}

function groupView(w: NodeWork, segment: string, management: boolean): NodeGroupView {
  const signals: NodeGroupView['signals'][number][] = [];
  let fabric = false;
  for (const s of w.scored) {
    if (s.spec.group === undefined || s.value === undefined) continue;
    if (s.spec.group === 'fabric') fabric = true;
    signals.push({ key: s.key, spec: s.spec, degradeZ: s.zOwn ?? s.z });
  }
  return { node: w.name, mounts: w.sample.mounts, segment, fabric, management, signals };
}

function decideNode(w: NodeWork, xids: readonly XidEvent[], now: number, decay: number, xidDecay: number, config: HealthConfig): NodeDecision {
  const { rec, name } = w;
  const ev = updateEvidence(rec, w.scored, now, decay, config);
  decayXidPoints(rec, xidDecay);
  const actions = [...applyXids(rec, name, xids, now, config), ...applyMissing(rec, name, w.sample.missing, now, config)];
  let score = ev.score;
  const reasons: HealthReason[] = ev.reasons;
  for (const [cls, pts] of Object.entries(rec.xidPoints)) {
    score += pts;
    reasons.push({ signal: `xid.${cls}`, value: pts, weight: 1, contribution: pts, detail: `decayed points of ${cls} XIDs` });
  }
  rec.score = Number.isFinite(score) ? score : 0;
  reasons.sort((a, b) => b.contribution - a.contribution);
  const top = reasons[0] ? `${reasons[0].signal}=${fmt(reasons[0].value)}` : 'none';
  const step = stepHysteresis(rec, name, now, config, top);
  w.transitions.push(...step.transitions);
  // One incident per episode: the node leaving READY, whatever took it out (score, XID hold,
  // missing GPU); a later escalation of the same episode is not another incident.
  for (const t of w.transitions) if (t.from === 'READY' && t.to !== 'READY') recordIncident(rec, now, t.to === 'QUARANTINED' ? 'quarantined' : 'suspect', t.reason);
  const d: NodeDecision = { node: name, status: rec.status, score: rec.score, reasons: reasons.slice(0, REASON_CAP), transitions: w.transitions, actions, lemon: false };
  if (rec.hold) d.hold = { ...rec.hold };
  return d;
}

function progressView(w: NodeWork, segment: string): NodeProgress {
  const s = w.sample;
  const v: NodeProgress = {
    status: w.rec.status, held: w.rec.hold !== undefined, score: w.rec.score, silent: s.batches === 0,
    targets: [...s.mounts.map((m) => `storage:${m}`), `fabric:${segment}`, `management:${segment}`],
  };
  if (s.util !== undefined) v.util = s.util;
  if (s.throughput !== undefined) v.throughput = s.throughput;
  return v;
}

/**
 * The same detector as an object owning its state (advanced in place), for a caller that
 * keeps one instance: the scheduler leader between Redis round trips, the evaluation loop.
 * `toJSON` / `fromJSON` are the Redis form.
 */
export class HealthEvaluator {
  private current: HealthState;

  constructor(readonly config: HealthConfig = DEFAULT_HEALTH_CONFIG, state: HealthState = emptyHealthState()) {
    this.current = state;
  }

  get state(): HealthState {
    return this.current;
  }

  evaluate(input: HealthWindowInput): HealthEvaluation {
    const out = advanceHealth(this.current, input, this.config);
    this.current = out.state;
    return out;
  }

  toJSON(): string {
    return serializeHealthState(this.current);
  }

  static fromJSON(text: string, config: HealthConfig = DEFAULT_HEALTH_CONFIG): HealthEvaluator {
    return new HealthEvaluator(config, parseHealthState(text));
  }
}
