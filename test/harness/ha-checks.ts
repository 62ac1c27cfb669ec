// Checks of the HA tests and the soak: rank executions from marker files, WatchJob histories
// with no gap, and GPU claims held by jobs that no longer run.
import { existsSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { GantryClient } from '@gantry/sdk';
import { JobState, isTerminalJobState, jobStateName, type JobEvent } from '@gantry/proto';
import { NodeStore, JobStore } from '@gantry/store';

/**
 * A rank command that appends "job attempt node-rank" to `marker` once it starts, then sleeps.
 * One line per execution: two lines with the same job and rank mean a rank ran twice.
 */
export function markerCommand(marker: string, sleepSeconds: number): string[] {
  return ['sh', '-c', `echo "$GANTRY_JOB_ID $GANTRY_ATTEMPT $NODE_RANK" >> ${marker}; sleep ${sleepSeconds}`];
}

export interface MarkerReport {
  /** Executions per "job rank". */
  executions: Map<string, { attempts: number[] }>;
  /** "job rank" run more than once within one attempt, or in two attempts of a job that did not recover. */
  duplicates: string[];
}

/** Reads a marker file; a rank counts as run twice when the same (job, attempt, rank) appears twice. */
export function readMarkers(marker: string): MarkerReport {
  const executions = new Map<string, { attempts: number[] }>();
  const duplicates: string[] = [];
  if (!existsSync(marker)) return { executions, duplicates };
  for (const line of readFileSync(marker, 'utf8').split('\n')) {
    const [job, attempt, rank] = line.trim().split(/\s+/);
    if (!job || attempt === undefined || rank === undefined) continue;
    const key = `${job} ${rank}`;
    const e = executions.get(key) ?? { attempts: [] };
    if (e.attempts.includes(Number(attempt))) duplicates.push(`${job} attempt ${attempt} rank ${rank}`);
    e.attempts.push(Number(attempt));
    executions.set(key, e);
  }
  return { executions, duplicates };
}

/**
 * Reads the job's WatchJob history to its end and reports gaps: the first event must leave no
 * state (the submission), each next one must start where the previous one ended, and the last
 * must be the job's final state.
 */
export async function watchHistoryGaps(client: GantryClient, jobId: string, finalState: JobState, timeoutMs = 30_000): Promise<string[]> {
  let events: JobEvent[] = [];
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    // UNAVAILABLE (a NATS server died and the events stream is electing a new leader): watch
    // again from the start, as a client following a job does; the history replays whole.
    for (;;) {
      events = [];
      try {
        for await (const e of client.watchJob(jobId, { signal: ac.signal })) {
          events.push(e);
          if (isTerminalJobState(e.toState) && e.toState === finalState) break;
        }
        break;
      } catch (err) {
        if (ac.signal.aborted) break;
        if ((err as { code?: number }).code !== 14) return [`watch failed: ${(err as Error).message}`];
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    clearTimeout(timer);
  }
  const gaps: string[] = [];
  if (events.length === 0) return ['no events'];
  if (events[0]!.fromState !== JobState.JOB_STATE_UNSPECIFIED) gaps.push(`history starts at ${jobStateName(events[0]!.fromState)}, not at the submission`);
  for (let i = 1; i < events.length; i++) {
    if (events[i]!.fromState !== events[i - 1]!.toState) gaps.push(`${jobStateName(events[i - 1]!.toState)} then ${jobStateName(events[i]!.fromState)} -> ${jobStateName(events[i]!.toState)}`);
  }
  const last = events[events.length - 1]!.toState;
  if (last !== finalState) gaps.push(`history ends at ${jobStateName(last)}, the job is ${jobStateName(finalState)}`);
  return gaps;
}

/** GPU claims whose job is in a final state (nothing runs for them): node, gpu and owner. */
export async function orphanClaims(redis: Redis): Promise<string[]> {
  const nodes = await new NodeStore(redis).list();
  const jobs = new JobStore(redis);
  const out: string[] = [];
  for (const n of nodes) {
    for (const a of n.allocations) {
      const rec = await jobs.get(a.jobId);
      if (!rec || isTerminalJobState(rec.job.state)) out.push(`${n.node.name} gpu ${a.gpuIndex} held by ${a.jobId} (${rec ? jobStateName(rec.job.state) : 'missing'})`);
    }
  }
  return out;
}
