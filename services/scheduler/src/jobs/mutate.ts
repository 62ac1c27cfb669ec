// Read-modify-write of one job with compare-and-set, retried when another writer got there
// first. `change` is pure: it sees the latest record and returns the commit to attempt.
import type { JobCommit, JobRecord, JobStore } from '@gantry/store';
import { StaleWriteError } from '@gantry/store';

export type JobChange = Omit<JobCommit, 'prev'> | undefined;

export async function mutateJob(store: JobStore, id: string, change: (rec: JobRecord) => JobChange, attempts = 8): Promise<JobRecord | undefined> {
  for (let i = 0; i < attempts; i++) {
    const rec = await store.get(id);
    if (!rec) return undefined;
    const c = change(rec);
    if (!c) return rec;
    try {
      return await store.commit({ ...c, prev: rec });
    } catch (err) {
      if (err instanceof StaleWriteError && i < attempts - 1) continue;
      throw err;
    }
  }
  return undefined;
}
