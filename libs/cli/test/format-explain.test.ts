import { describe, expect, it } from 'vitest';
import { ExplainJobResponse, Job, JobState } from '@gantry/proto';
import { attemptNodes, clockTime, explainView, formatRejections, nodeList, reservationLine } from '../src/format-explain.js';
import { NOW, ago, sampleJob } from './fixtures.js';

const later = (s: number) => new Date(NOW.getTime() + s * 1_000);

const pending = ExplainJobResponse.fromPartial({
  jobId: 'j-7',
  state: JobState.JOB_STATE_PENDING,
  queuePosition: 3,
  pendingReason: 'no-capacity',
  message: 'needs 4 nodes with 8 free GPUs, 2 fit',
  quota: 'tenant ml at 16/16 GPUs nominal, borrowing 0/8',
  // Not in order: the view sorts by count.
  rejections: [
    { reason: 'gpu type H100 not in [B200]', nodes: 60 },
    { reason: 'node quarantined', nodes: 3 },
    { reason: 'insufficient free GPUs', nodes: 4011 },
  ],
  reservationStart: later(12 * 60),
  reservationNodes: ['node-1', 'node-2', 'node-3', 'node-4'],
  evaluatedAt: ago(2),
});

describe('formatRejections', () => {
  it('sorts by count, says "nodes" once, and separates thousands', () => {
    expect(formatRejections(pending.rejections)).toBe('4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in [B200]; 3: node quarantined');
  });

  it('orders ties by reason, drops zero counts, and says "node" for one', () => {
    const r = [
      { reason: 'b', nodes: 2 },
      { reason: 'a', nodes: 2 },
      { reason: 'z', nodes: 0 },
      { reason: 'c', nodes: 1_234_567 },
    ];
    expect(formatRejections(r)).toBe('1,234,567 nodes: c; 2: a; 2: b');
    expect(formatRejections([{ reason: 'draining', nodes: 1 }])).toBe('1 node: draining');
    expect(formatRejections([])).toBe('');
  });

  it('does not reorder its input', () => {
    const r = [{ reason: 'a', nodes: 1 }, { reason: 'b', nodes: 2 }];
    formatRejections(r);
    expect(r.map((x) => x.reason)).toEqual(['a', 'b']);
  });
});

describe('reservation', () => {
  it('lists two nodes, then how many more', () => {
    expect(nodeList(['a'])).toBe('a');
    expect(nodeList(['a', 'b'])).toBe('a, b');
    expect(nodeList(['a', 'b', 'c'])).toBe('a, b (+1 more)');
  });

  it('prints UTC clock times, with the date when it is another day', () => {
    expect(clockTime(later(7_500), NOW)).toBe('14:05:00');
    expect(clockTime(later(13 * 3_600), NOW)).toBe('2026-01-02 01:00:00');
  });

  it('says when the reservation starts, and "now" once it is due', () => {
    expect(reservationLine(later(12 * 60), ['node-1'], NOW)).toBe('starts in 12m at 12:12:00 on node-1');
    expect(reservationLine(later(3 * 3_600), [], NOW)).toBe('starts in 3h at 15:00:00');
    expect(reservationLine(ago(5), ['n'], NOW)).toBe('starts now at 11:59:55 on n');
  });
});

describe('explainView', () => {
  it('a pending job: position, reason, quota, rejections, reservation, age', () => {
    expect(explainView(pending, undefined, NOW).split('\n')).toEqual([
      'job j-7 PENDING, position 3 in the queue',
      'waiting: needs 4 nodes with 8 free GPUs, 2 fit   (reason: no-capacity)',
      'quota: tenant ml at 16/16 GPUs nominal, borrowing 0/8',
      'nodes: 4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in [B200]; 3: node quarantined',
      'reservation: starts in 12m at 12:12:00 on node-1, node-2 (+2 more)',
      'evaluated 2s ago',
      '',
    ]);
  });

  it('a pending job the scheduler has not evaluated yet: only what is known', () => {
    const res = ExplainJobResponse.fromPartial({ jobId: 'j-8', state: JobState.JOB_STATE_PENDING, message: 'not evaluated by the scheduler yet' });
    expect(explainView(res, undefined, NOW)).toBe('job j-8 PENDING\nwaiting: not evaluated by the scheduler yet\n');
  });

  it('a pending job with a reason but no message', () => {
    const res = ExplainJobResponse.fromPartial({ jobId: 'j-9', state: JobState.JOB_STATE_PENDING, queuePosition: 1, pendingReason: 'quota' });
    expect(explainView(res, undefined, NOW)).toBe('job j-9 PENDING, position 1 in the queue\nwaiting: (reason: quota)\n');
  });

  const running = Job.fromPartial({
    ...sampleJob,
    state: JobState.JOB_STATE_RUNNING,
    attempt: 2,
    attempts: [
      sampleJob.attempts[0]!,
      {
        number: 2,
        placementExplanation: 'from the job',
        placement: [
          { rank: 2, node: 'gpu-09' },
          { rank: 0, node: 'gpu-07' },
          { rank: 1, node: 'gpu-07' },
        ],
      },
    ],
  });

  it('a placed job: state, attempt, placement explanation, the current attempt nodes in rank order', () => {
    const res = ExplainJobResponse.fromPartial({ jobId: 'j-42', state: JobState.JOB_STATE_RUNNING, placementExplanation: 'leaf switch leaf-7: best fit 0.94' });
    expect(explainView(res, running, NOW)).toBe('job j-42 RUNNING (attempt 2)\nplacement: leaf switch leaf-7: best fit 0.94\nnodes: gpu-07, gpu-09\n');
    expect(attemptNodes(running)).toEqual(['gpu-07', 'gpu-09']);
  });

  it("falls back to the attempt's explanation, and shows an ended job's reason", () => {
    const res = ExplainJobResponse.fromPartial({ jobId: 'j-42', state: JobState.JOB_STATE_FAILED, message: 'rank 1 exited with code 3' });
    expect(explainView(res, { ...running, state: JobState.JOB_STATE_FAILED }, NOW)).toBe(
      'job j-42 FAILED (attempt 2)\nreason: rank 1 exited with code 3\nplacement: from the job\nnodes: gpu-07, gpu-09\n',
    );
  });

  it('a job cancelled before it was ever placed', () => {
    const res = ExplainJobResponse.fromPartial({ jobId: 'j-1', state: JobState.JOB_STATE_CANCELLED, message: 'cancelled by user' });
    const job = Job.fromPartial({ id: 'j-1', state: JobState.JOB_STATE_CANCELLED });
    expect(explainView(res, job, NOW)).toBe('job j-1 CANCELLED\nreason: cancelled by user\n');
    expect(attemptNodes(undefined)).toEqual([]);
  });
});
