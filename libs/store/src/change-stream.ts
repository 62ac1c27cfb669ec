// The capped change streams (gantry:jobs:changes, gantry:nodes:changes): every script that
// writes a job, or a node's record or allocations, appends the names it wrote in the same
// atomic step. A reader that keeps parsed copies reads the stream from its cursor and fetches
// only what changed; when the cap trimmed entries it had not read, it must reload everything.
import type { Redis } from 'ioredis';

/** Stream entries read per XRANGE. */
const CHANGES_BATCH = 5000;

export interface Changes {
  /** Every value of the entries after the cursor (an entry's fields are `kind name` pairs). */
  names: Set<string>;
  cursor: string;
  /** The stream no longer holds every entry after the cursor: the reader must reload everything. */
  gap: boolean;
}

/** The id of the stream's newest entry ('0-0' when empty): where a reader that loads everything now starts. */
export async function changesHead(redis: Redis, key: string): Promise<string> {
  const last = await redis.xrevrange(key, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}

/** What the entries after `cursor` name, and the new cursor (see Changes). */
export async function changesSince(redis: Redis, key: string, cursor: string): Promise<Changes> {
  const names = new Set<string>();
  // The oldest entry and the first batch after the cursor, in one transaction: read apart,
  // a trim in between could drop entries after the cursor unseen (and cost a round trip).
  const [[probeErr, first], [rangeErr, firstBatch]] = (await redis.multi()
    .xrange(key, '-', '+', 'COUNT', 1)
    .xrange(key, `(${cursor}`, '+', 'COUNT', CHANGES_BATCH)
    .exec())! as [[Error | null, [string, string[]][]], [Error | null, [string, string[]][]]];
  if (probeErr || rangeErr) throw probeErr ?? rangeErr;
  // Entries up to the cursor may be trimmed; one after it may not (ids only grow). A first
  // entry newer than the cursor may mean some were trimmed: reported as a gap.
  if (first[0] && compareStreamIds(first[0][0], cursor) > 0) {
    return { names, cursor: await changesHead(redis, key), gap: true };
  }
  for (let batch = firstBatch; ; batch = await redis.xrange(key, `(${cursor}`, '+', 'COUNT', CHANGES_BATCH)) {
    for (const [id, fields] of batch) {
      cursor = id;
      for (let i = 1; i < fields.length; i += 2) if (fields[i]) names.add(fields[i]!);
    }
    if (batch.length < CHANGES_BATCH) return { names, cursor, gap: false };
  }
}

/** Orders Redis stream ids ("ms-seq"). */
function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
