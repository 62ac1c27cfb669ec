import { describe, expect, it } from 'vitest';
import { JobState, NodeState } from '../src/index.js';
import { JOB_TRANSITIONS, NODE_TRANSITIONS, canTransitionJob, canTransitionNode, isTerminalJobState, jobStateName, parseJobState, parseNodeState } from '../src/states.js';

const J = JobState;

describe('job state machine', () => {
  it('follows DESIGN.md: PENDING -> SCHEDULED -> RUNNING -> terminal, recovery and preemption loops', () => {
    expect(canTransitionJob(J.JOB_STATE_PENDING, J.JOB_STATE_SCHEDULED)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_SCHEDULED, J.JOB_STATE_RUNNING)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_RUNNING, J.JOB_STATE_SUCCEEDED)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_RUNNING, J.JOB_STATE_RECOVERING)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_SCHEDULED, J.JOB_STATE_RECOVERING)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_RECOVERING, J.JOB_STATE_PENDING)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_RECOVERING, J.JOB_STATE_FAILED)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_RECOVERING, J.JOB_STATE_CANCELLED)).toBe(true);
    // The next attempt is placed like any pending job: never straight from RECOVERING.
    expect(canTransitionJob(J.JOB_STATE_RECOVERING, J.JOB_STATE_SCHEDULED)).toBe(false);
    expect(canTransitionJob(J.JOB_STATE_RUNNING, J.JOB_STATE_PREEMPTED)).toBe(true);
    expect(canTransitionJob(J.JOB_STATE_PREEMPTED, J.JOB_STATE_PENDING)).toBe(true);
  });

  it('refuses skipping placement and leaving a terminal state, except an operator retry of a FAILED job', () => {
    expect(canTransitionJob(J.JOB_STATE_PENDING, J.JOB_STATE_RUNNING)).toBe(false);
    expect(canTransitionJob(J.JOB_STATE_PENDING, J.JOB_STATE_SUCCEEDED)).toBe(false);
    for (const t of [J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED]) {
      expect(isTerminalJobState(t)).toBe(true);
      for (const to of Object.values(J).filter((v): v is JobState => typeof v === 'number')) {
        expect(canTransitionJob(t, to)).toBe(t === J.JOB_STATE_FAILED && to === J.JOB_STATE_PENDING);
      }
    }
  });

  it('has an entry for every real state and only targets real states', () => {
    const real = Object.values(J).filter((v): v is JobState => typeof v === 'number' && v > 0);
    expect([...JOB_TRANSITIONS.keys()].sort()).toEqual(real.sort());
    for (const targets of JOB_TRANSITIONS.values()) for (const t of targets) expect(real).toContain(t);
    const nodeReal = Object.values(NodeState).filter((v): v is NodeState => typeof v === 'number' && v > 0);
    expect([...NODE_TRANSITIONS.keys()].sort()).toEqual(nodeReal.sort());
  });

  it('names and parses states', () => {
    expect(jobStateName(J.JOB_STATE_RUNNING)).toBe('RUNNING');
    expect(parseJobState('running')).toBe(J.JOB_STATE_RUNNING);
    expect(parseJobState('unspecified')).toBeUndefined();
    expect(parseJobState('nope')).toBeUndefined();
    expect(parseNodeState('lost')).toBe(NodeState.NODE_STATE_LOST);
  });
});

describe('node state machine', () => {
  it('quarantine is left to READY, or to SUSPECT when a released node still deviates; a drained node can be quarantined; lost nodes come back READY', () => {
    expect(canTransitionNode(NodeState.NODE_STATE_QUARANTINED, NodeState.NODE_STATE_READY)).toBe(true);
    expect(canTransitionNode(NodeState.NODE_STATE_QUARANTINED, NodeState.NODE_STATE_SUSPECT)).toBe(true);
    expect(canTransitionNode(NodeState.NODE_STATE_QUARANTINED, NodeState.NODE_STATE_DRAINING)).toBe(false);
    expect(canTransitionNode(NodeState.NODE_STATE_DRAINING, NodeState.NODE_STATE_QUARANTINED)).toBe(true);
    expect(canTransitionNode(NodeState.NODE_STATE_LOST, NodeState.NODE_STATE_READY)).toBe(true);
    expect(canTransitionNode(NodeState.NODE_STATE_READY, NodeState.NODE_STATE_SUSPECT)).toBe(true);
    expect(canTransitionNode(NodeState.NODE_STATE_DRAINED, NodeState.NODE_STATE_DRAINING)).toBe(false);
  });
});
