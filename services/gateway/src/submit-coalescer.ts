// Concurrent SubmitJob calls travel to the scheduler together. Each call to the scheduler
// costs both processes a gRPC round trip (HTTP/2 framing, protobuf, a Redis round trip of its
// own), more than the submission's own work: the submissions admitted in one turn of the event
// loop go as one SubmitJobs call instead (up to MAX_SUBMIT_BATCH, and up to BATCH_BYTES: one
// call must stay under gRPC's message limit however large the specs), one lone submission as
// the plain SubmitJob it was. Each caller still gets exactly what SubmitJob would have answered:
// its job, or its own error status (a refused item fails only its caller; a failed call, all).
import { SubmitJobRequest, type SubmitJobResponse, type SubmitJobsResponse } from '@gantry/proto';
import { status } from '@grpc/grpc-js';
import { GrpcError } from '@gantry/service-kit';
import { MAX_SUBMIT_BATCH } from './admission/batch.js';

/**
 * Encoded submissions per SubmitJobs call: a quarter of gRPC's default 4 MiB message limit
 * (every SubmitJob that reached the gateway is under it; several together need not be).
 */
export const BATCH_BYTES = 1 << 20;

interface Waiting {
  req: SubmitJobRequest;
  resolve: (res: SubmitJobResponse) => void;
  reject: (err: unknown) => void;
}

export class SubmitCoalescer {
  private queue: Waiting[] = [];
  private queuedBytes = 0;

  constructor(
    private readonly one: (req: SubmitJobRequest) => Promise<SubmitJobResponse>,
    private readonly many: (jobs: SubmitJobRequest[]) => Promise<SubmitJobsResponse>,
    private readonly maxBatch = MAX_SUBMIT_BATCH,
  ) {}

  submit(req: SubmitJobRequest): Promise<SubmitJobResponse> {
    const bytes = SubmitJobRequest.encode(req).finish().byteLength;
    return new Promise((resolve, reject) => {
      // One that would take the call past the bound goes in the next call.
      if (this.queue.length > 0 && this.queuedBytes + bytes > BATCH_BYTES) this.flush();
      this.queue.push({ req, resolve, reject });
      this.queuedBytes += bytes;
      if (this.queue.length === 1) setImmediate(() => this.flush());
      else if (this.queue.length >= this.maxBatch) this.flush();
    });
  }

  private flush(): void {
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    this.queuedBytes = 0;
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
