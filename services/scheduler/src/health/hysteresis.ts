// READY -> SUSPECT -> QUARANTINED with hysteresis: a state is entered after k windows at or
// above its threshold and left after m windows below a lower one, so a score hovering near
// a threshold does not flap. Holds (hard XID actions, a missing GPU, an operator
// quarantine) override the score until the node is remediated or released.
import type { HealthConfig } from './config.js';
import type { NodeRecord } from './state.js';
import type { HealthStatus, HealthTransition } from './types.js';
import { ACTION_RANK, QUARANTINE_RANK } from './xid-actions.js';

export const HISTORY_CAP = 20;

export interface StepResult {
  record: NodeRecord;
  transitions: HealthTransition[];
}

/** Records a status change on a (private copy of a) node record. */
export function move(rec: NodeRecord, node: string, to: HealthStatus, atMs: number, reason: string, out: HealthTransition[]): void {
  if (rec.status === to) return;
  const t: HealthTransition = { node, from: rec.status, to, atMs, score: rec.score, reason };
  out.push(t);
  rec.history = [...rec.history, t].slice(-HISTORY_CAP);
  rec.status = to;
  rec.sinceMs = atMs;
}

/** Applies one window's score to a node record (already a private copy) and returns it. */
export function stepHysteresis(rec: NodeRecord, node: string, nowMs: number, config: HealthConfig, topReason: string): StepResult {
  const { suspect: s, quarantine: q } = config.states;
  const score = rec.score;
  const st = rec.streak;
  rec.streak = {
    suspectAbove: score >= s.enter ? st.suspectAbove + 1 : 0,
    suspectBelow: score < s.exit ? st.suspectBelow + 1 : 0,
    quarantineAbove: score >= q.enter ? st.quarantineAbove + 1 : 0,
    quarantineBelow: score < q.exit ? st.quarantineBelow + 1 : 0,
  };
  const k = rec.streak;
  const out: HealthTransition[] = [];
  const holdRank = rec.hold ? ACTION_RANK[rec.hold.action] : 0;

  if (holdRank >= QUARANTINE_RANK && rec.status !== 'QUARANTINED') {
    move(rec, node, 'QUARANTINED', nowMs, rec.hold!.reason, out);
    rec.quarantineByScore = false;
  } else if (holdRank > 0 && holdRank < QUARANTINE_RANK && rec.status === 'READY') {
    move(rec, node, 'SUSPECT', nowMs, rec.hold!.reason, out);
  }

  const why = (level: string, n: number, thr: number): string => `score ${score.toFixed(1)} >= ${thr} for ${n} windows (${level}); top: ${topReason}`;
  if (rec.status === 'READY' || rec.status === 'SUSPECT') {
    if (k.quarantineAbove >= q.enterWindows) {
      move(rec, node, 'QUARANTINED', nowMs, why('quarantine', k.quarantineAbove, q.enter), out);
      rec.quarantineByScore = true;
    } else if (rec.status === 'READY' && k.suspectAbove >= s.enterWindows) {
      move(rec, node, 'SUSPECT', nowMs, why('suspect', k.suspectAbove, s.enter), out);
    } else if (rec.status === 'SUSPECT' && !rec.hold && k.suspectBelow >= s.exitWindows) {
      move(rec, node, 'READY', nowMs, `score below ${s.exit} for ${k.suspectBelow} windows`, out);
    }
  } else if (rec.status === 'QUARANTINED' && !rec.hold && rec.quarantineByScore && q.autoRelease && k.quarantineBelow >= q.exitWindows) {
    move(rec, node, 'READY', nowMs, `score below ${q.exit} for ${k.quarantineBelow} windows`, out);
    rec.quarantineByScore = false;
  }
  if (out.length > 0) {
    // A new state counts its own windows: leaving needs m fresh windows from here.
    rec.streak = { ...rec.streak, suspectBelow: 0, quarantineBelow: 0 };
  }
  return { record: rec, transitions: out };
}
