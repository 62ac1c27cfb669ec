// How the gateway groups concurrent SubmitJob calls into SubmitJobs calls: by event-loop turn,
// at most MAX_SUBMIT_BATCH and BATCH_BYTES a call, a lone one as SubmitJob, and each caller
// answered with its own item. (Through the real gateway and scheduler: test/e2e/submit-jobs.test.ts.)
import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { Job, SubmitJobRequest, type SubmitJobResponse, type SubmitJobsResponse } from '@gantry/proto';
import { BATCH_BYTES, SubmitCoalescer } from '../src/submit-coalescer.js';

const req = (name: string, envBytes = 0): SubmitJobRequest => SubmitJobRequest.fromPartial({ spec: { name, nodes: 1, gpusPerNode: 1, command: ['true'], env: envBytes ? { A: 'x'.repeat(envBytes) } : {} } });
const answer = (r: SubmitJobRequest): SubmitJobResponse => ({ job: Job.create({ id: `j-${r.spec!.name}` }), created: true });

function recorder() {
  const singles: string[] = [];
  const batches: SubmitJobRequest[][] = [];
  const coalescer = new SubmitCoalescer(
    async (r) => { singles.push(r.spec!.name); return answer(r); },
    async (jobs): Promise<SubmitJobsResponse> => {
      batches.push(jobs);
      return { results: jobs.map((r, index) => (r.spec!.name.startsWith('bad')
        ? { index, result: { $case: 'error', error: { code: status.ALREADY_EXISTS, message: `${r.spec!.name} exists` } } }
        : { index, result: { $case: 'submitted', submitted: answer(r) } })) };
    },
  );
  return { coalescer, singles, batches };
}

describe('SubmitCoalescer', () => {
  it('sends a lone submission as SubmitJob, and those of one turn as one SubmitJobs, each caller answered alone', async () => {
    const { coalescer, singles, batches } = recorder();
    expect((await coalescer.submit(req('alone'))).job?.id).toBe('j-alone');
    expect(singles).toEqual(['alone']);
    const out = await Promise.allSettled(['a', 'bad-b', 'c'].map((n) => coalescer.submit(req(n))));
    expect(batches.map((b) => b.map((r) => r.spec!.name))).toEqual([['a', 'bad-b', 'c']]);
    expect(out.map((o) => (o.status === 'fulfilled' ? o.value.job?.id : (o.reason as { code: number; details: string }).details))).toEqual(['j-a', 'bad-b exists', 'j-c']);
    expect((out[1] as PromiseRejectedResult).reason.code).toBe(status.ALREADY_EXISTS);
  });

  it('keeps each call under BATCH_BYTES however large the specs (one call of them all would pass gRPC\'s 4 MiB limit)', async () => {
    const { coalescer, batches } = recorder();
    const out = await Promise.all(Array.from({ length: 30 }, (_, i) => coalescer.submit(req(`big-${i}`, 200 * 1024))));
    expect(out.map((o) => o.job?.id)).toEqual(Array.from({ length: 30 }, (_, i) => `j-big-${i}`));
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches) expect(b.reduce((n, r) => n + SubmitJobRequest.encode(r).finish().byteLength, 0)).toBeLessThanOrEqual(BATCH_BYTES);
  });
});
