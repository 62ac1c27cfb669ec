// Read-modify-write of one record with compare-and-set, retried when another writer got there
// first. `change` is pure: it sees the latest record and returns the commit to attempt.
import type { JobCommit, JobRecord, JobStore, NodeCommit, NodeRecord, NodeStore } from '@gantry/store';
import { StaleWriteError } from '@gantry/store';

async function readModifyWrite<R, C>(read: () => Promise<R | undefined>, change: (rec: R) => C | undefined, commit: (rec: R, c: C) => Promise<R>, attempts: number, first?: { rec: R | undefined }): Promise<R | undefined> {
  for (let i = 0; i < attempts; i++) {
    const rec = i === 0 && first ? first.rec : await read();
    if (!rec) return undefined;
    const c = change(rec);
    if (!c) return rec;
    try {
      return await commit(rec, c);
    } catch (err) {
      if (err instanceof StaleWriteError && i < attempts - 1) continue;
      throw err;
    }
  }
  return undefined;
}

export type JobChange = Omit<JobCommit, 'prev'> | undefined;

/**
 * `first`: the record as the caller already read it (in the same round trip as something
 * else), used for the first try; a stale one only costs a retry after a fresh read.
 */
export function mutateJob(store: JobStore, id: string, change: (rec: JobRecord) => JobChange, attempts = 8, first?: { rec: JobRecord | undefined }): Promise<JobRecord | undefined> {
  return readModifyWrite(() => store.get(id), change, (prev, c) => store.commit({ ...c, prev }), attempts, first);
}

export type NodeChange = Omit<NodeCommit, 'prev'> | undefined;

export function mutateNode(store: NodeStore, name: string, change: (rec: NodeRecord) => NodeChange, attempts = 8): Promise<NodeRecord | undefined> {
  return readModifyWrite(() => store.get(name), change, (prev, c) => store.commit({ ...c, prev }), attempts);
}
