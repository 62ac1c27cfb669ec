// The fields of a TelemetryBatch the ingest decides on (node, collection time, agent instance),
// read from its bytes without decoding the rest. The ingest stores the bytes as they came;
// decoding every GPU, link and mount of each batch only to read these three took most of its
// CPU and was, with the health window's decode of the same batches, the scheduler's largest
// source of garbage at 5,000 nodes (garbage collection: 29 % of its time).
//
// Every top-level field is walked by its wire type, so truncated bytes or a group fail here as
// in a full decode; what nested fields hold is not checked: readers of stored batches skip one
// that does not decode (NodeTelemetryStore).

export class BatchHeaderError extends Error {
  override name = 'BatchHeaderError';
}

export interface BatchHeader {
  node: string;
  time: Date | undefined;
  instanceId: string;
}

const utf8 = new TextDecoder();

/** Reads one varint at `pos`; returns its value (exact below 2^53) and the position after it. */
function varint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new BatchHeaderError('truncated varint');
    const b = buf[pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
  throw new BatchHeaderError('varint longer than 10 bytes');
}

/** google.protobuf.Timestamp as ts-proto gives it (seconds and nanos; negative values are not a collection time). */
function timestamp(buf: Uint8Array, start: number, end: number): Date {
  let seconds = 0;
  let nanos = 0;
  for (let pos = start; pos < end;) {
    const [tag, p] = varint(buf, pos);
    const [v, next] = tag === 8 || tag === 16 ? varint(buf, p) : [0, skip(buf, tag, p)];
    if (tag === 8) seconds = v;
    else if (tag === 16) nanos = v;
    pos = next;
  }
  return new Date(seconds * 1000 + nanos / 1_000_000);
}

/** The position after the value of a field with this tag. */
function skip(buf: Uint8Array, tag: number, pos: number): number {
  switch (tag & 7) {
    case 0: return varint(buf, pos)[1];
    case 1: return pos + 8;
    case 2: {
      const [len, p] = varint(buf, pos);
      return p + len;
    }
    case 5: return pos + 4;
    default: throw new BatchHeaderError(`wire type ${tag & 7} is not valid here`);
  }
}

/** The batch's node, time and instance, as TelemetryBatch.decode would give them (the last occurrence of a field wins). */
export function readBatchHeader(buf: Uint8Array): BatchHeader {
  const out: BatchHeader = { node: '', time: undefined, instanceId: '' };
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p] = varint(buf, pos);
    if (tag === 10 || tag === 18 || tag === 90) {
      const [len, start] = varint(buf, p);
      const end = start + len;
      if (end > buf.length) throw new BatchHeaderError('field runs past the end');
      if (tag === 10) out.node = utf8.decode(buf.subarray(start, end));
      else if (tag === 90) out.instanceId = utf8.decode(buf.subarray(start, end));
      else out.time = timestamp(buf, start, end);
      pos = end;
    } else {
      pos = skip(buf, tag, p);
    }
    if (pos > buf.length) throw new BatchHeaderError('field runs past the end');
  }
  return out;
}
