import { describe, expect, it } from 'vitest';
import { Job, JobEvent, JobState, RecoveryGrade } from '@gantry/proto';
import { endsWatch } from '../src/job-service.js';

const S = JobState;
const ev = (toState: JobState, attempt: number) => JobEvent.create({ toState, attempt });
const job = (state: JobState, attempt: number, manualRetry = false) =>
  Job.create({ state, attempt, recovery: manualRetry ? { decided: true, retry: true, grade: RecoveryGrade.RECOVERY_GRADE_MANUAL_RETRY } : undefined });

describe('when a watch ends', () => {
  it('ends at the end of the attempt current when it began, or of a later one', () => {
    expect(endsWatch(ev(S.JOB_STATE_RUNNING, 1), job(S.JOB_STATE_RUNNING, 1))).toBe(false);
    expect(endsWatch(ev(S.JOB_STATE_SUCCEEDED, 1), job(S.JOB_STATE_RUNNING, 1))).toBe(true);
    expect(endsWatch(ev(S.JOB_STATE_FAILED, 1), job(S.JOB_STATE_FAILED, 1))).toBe(true);
  });

  it('does not end at an end that an operator retry has since undone', () => {
    // Retried, not yet placed: the FAILED of attempt 1 is history; attempt 2's end ends the watch.
    expect(endsWatch(ev(S.JOB_STATE_FAILED, 1), job(S.JOB_STATE_PENDING, 1, true))).toBe(false);
    expect(endsWatch(ev(S.JOB_STATE_SUCCEEDED, 2), job(S.JOB_STATE_PENDING, 1, true))).toBe(true);
    // Retried and ended again: only the latest end counts.
    expect(endsWatch(ev(S.JOB_STATE_FAILED, 1), job(S.JOB_STATE_SUCCEEDED, 2))).toBe(false);
    expect(endsWatch(ev(S.JOB_STATE_SUCCEEDED, 2), job(S.JOB_STATE_SUCCEEDED, 2))).toBe(true);
    expect(endsWatch(ev(S.JOB_STATE_FAILED, 1), job(S.JOB_STATE_CANCELLED, 1))).toBe(false);
  });
});
