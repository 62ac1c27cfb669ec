// The scheduling pass's copy of every node record and its allocations. Listing every node
// each pass read two hashes per node from Redis and compared every allocation list: with
// 8,192 nodes, about 80 ms of a pass that places a few hundred jobs. Redis stays the truth:
// every script that writes a node's record or allocations appends the node's name to the node
// change stream in the same atomic step, so the copy re-reads only the nodes named there
// since its cursor, and lists everything again after a gap in the capped stream or a change
// of leadership (reset). The loop runs one pass at a time, so reads never overlap; a read
// still in flight when reset() is called keeps nothing of what it saw.
//
// Heartbeats are not changes (a node beats every 2 s): a record's heartbeatMs is as of its
// last read. The pass never looks at it; a reader that does uses NodeStore.list or getMany.
import type { NodeRecord, NodeStore, ParsedNode } from '@gantry/store';

export class NodeSnapshot {
  /** Newest node change stream entry applied; undefined until the first listing. */
  private cursor: string | undefined;
  /** Every node by name, in the index's (lexicographic) order. */
  private records = new Map<string, NodeRecord>();
  /** The parsed records behind `records`, reused while their revision stays. */
  private readonly parsed = new Map<string, ParsedNode>();
  /** Moved by reset(): a read that began before it stores nothing. */
  private generation = 0;
  /** Nodes read by the last read() (for tests and benchmarks). */
  lastRead = 0;

  constructor(private readonly nodes: NodeStore) {}

  /** Forget everything: the next read lists every node (a new leadership trusts nothing an earlier one read). */
  reset(): void {
    this.generation++;
    this.cursor = undefined;
    this.records = new Map();
    this.parsed.clear();
  }

  /**
   * Every node's record, in name order, as Redis holds it now (heartbeat times aside). A read
   * that reset() overtook still answers its caller with what it read, and keeps none of it.
   */
  async read(): Promise<NodeRecord[]> {
    const generation = this.generation;
    if (this.cursor !== undefined) {
      const records = this.records;
      const changes = await this.nodes.changesSince(this.cursor);
      if (!changes.gap) {
        const names = [...changes.names];
        const updated = withChanges(records, names, await this.nodes.getMany(names, this.parsed));
        for (const name of names) if (!updated.has(name)) this.parsed.delete(name);
        if (generation === this.generation) {
          this.records = updated;
          this.cursor = changes.cursor;
          this.lastRead = names.length;
        }
        return [...updated.values()];
      }
    }
    // The cursor is taken before the listing: a write during it is listed, read again next
    // time, or both; never missed.
    const head = await this.nodes.changesHead();
    const listed = await this.nodes.list(this.parsed);
    if (generation === this.generation) {
      this.records = new Map(listed.map((r) => [r.node.name, r]));
      this.cursor = head;
      this.lastRead = listed.length;
    }
    return listed;
  }
}

/**
 * `records` with the nodes named in the stream taken from `read` (those that still exist; a
 * name missing from it left). Changes `records` in place unless a node joined, which makes a
 * new map in name order, as a listing would have it (rare: a registration).
 */
function withChanges(records: Map<string, NodeRecord>, names: string[], read: NodeRecord[]): Map<string, NodeRecord> {
  const byName = new Map(read.map((r) => [r.node.name, r]));
  let added = false;
  for (const name of names) {
    const rec = byName.get(name);
    if (!rec) {
      records.delete(name);
    } else {
      added ||= !records.has(name);
      records.set(name, rec);
    }
  }
  return added ? new Map([...records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : records;
}
