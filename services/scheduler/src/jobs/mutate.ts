// Read-modify-write of one record with compare-and-set, retried when another writer got there
// first. `change` is pure: it sees the latest record and returns the commit to attempt.
import type { JobCommit, JobRecord, JobStore, NodeCommit, NodeRecord, NodeStore } from '@gantry/store';
import { StaleWriteError } from '@gantry/store';

async function readModifyWrite<R, C>(read: () => Promise<R | undefined>, change: (rec: R) => C | undefined, commit: (rec: R, c: C) => Promise<R>, attempts: number): Promise<R | undefined> {
  for (let i = 0; i < attempts; i++) {
    const rec = await read();
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

export function mutateJob(store: JobStore, id: string, change: (rec: JobRecord) => JobChange, attempts = 8): Promise<JobRecord | undefined> {
  return readModifyWrite(() => store.get(id), change, (prev, c) => store.commit({ ...c, prev }), attempts);
}

export type NodeChange = Omit<NodeCommit, 'prev'> | undefined;

export function mutateNode(store: NodeStore, name: string, change: (rec: NodeRecord) => NodeChange, attempts = 8): Promise<NodeRecord | undefined> {
  return readModifyWrite(() => store.get(name), change, (prev, c) => store.commit({ ...c, prev }), attempts);
}
