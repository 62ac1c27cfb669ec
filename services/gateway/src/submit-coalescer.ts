// Concurrent SubmitJob calls travel to the scheduler together. Each call to the scheduler
// costs both processes a gRPC round trip (HTTP/2 framing, protobuf, a Redis round trip of its
// own), more than the submission's own work: the submissions admitted in one turn of the event
// loop go as one SubmitJobs call instead (up to MAX_SUBMIT_BATCH), one lone submission as the
// plain SubmitJob it was. Each caller still gets exactly what SubmitJob would have answered:
// its job, or its own error status (a refused item fails only its caller; a failed call, all).
import type { SubmitJobRequest, SubmitJobResponse, SubmitJobsResponse } from '@gantry/proto';
import { status } from '@grpc/grpc-js';
import { GrpcError } from '@gantry/service-kit';
import { MAX_SUBMIT_BATCH } from './admission/batch.js';

interface Waiting {
  req: SubmitJobRequest;
  resolve: (res: SubmitJobResponse) => void;
  reject: (err: unknown) => void;
}

export class SubmitCoalescer {
  private queue: Waiting[] = [];

  constructor(
    private readonly one: (req: SubmitJobRequest) => Promise<SubmitJobResponse>,
    private readonly many: (jobs: SubmitJobRequest[]) => Promise<SubmitJobsResponse>,
    private readonly maxBatch = MAX_SUBMIT_BATCH,
  ) {}

  submit(req: SubmitJobRequest): Promise<SubmitJobResponse> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
      else if (this.queue.length >= this.maxBatch) this.flush();
    });
  }

  private flush(): void {
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    if (batch.length === 1) {
      const w = batch[0]!;
      this.one(w.req).then(w.resolve, w.reject);
      return;
    }
    this.many(batch.map((w) => w.req)).then((res) => {
      const answered = new Set<number>();
      for (const r of res.results) {
        const w = batch[r.index];
        if (!w || answered.has(r.index)) continue;
        answered.add(r.index);
        if (r.result?.$case === 'submitted') w.resolve(r.result.submitted);
        else if (r.result?.$case === 'error') w.reject(new GrpcError(r.result.error.code as status, r.result.error.message));
      }
      batch.forEach((w, i) => { if (!answered.has(i)) w.reject(new GrpcError(status.INTERNAL, 'the scheduler answered no result for this submission')); });
    }, (err: unknown) => { for (const w of batch) w.reject(err); });
  }
}
