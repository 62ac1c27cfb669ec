// The fields of a TelemetryBatch the scheduler's ingest decides on (node, collection time, agent
// instance), read from its bytes without decoding the rest. The ingest stores the bytes as they
// came, and a reader of stored batches (NodeTelemetryStore.since) picks the new ones by their
// time before it decodes them: decoding every GPU, link and mount of a batch only to read these
// three took most of the ingest's CPU and, in the health window, most of the scheduler's at
// 10,000 nodes.
//
// Every top-level field is walked with the protobuf runtime's reader (the one the generated
// decode uses), so truncated bytes or a group fail here as in a full decode; what nested fields
// hold is not checked: readers of stored batches skip one that does not decode
// (NodeTelemetryStore).
import { BinaryReader, Timestamp, WireType } from '@gantry/proto';

export class BatchHeaderError extends Error {
  override name = 'BatchHeaderError';
}

export interface BatchHeader {
  node: string;
  time: Date | undefined;
  instanceId: string;
}

/** TelemetryBatch's field numbers for node, time and instance_id (proto/gantry/v1/telemetry.proto). */
const NODE = 1;
const TIME = 2;
const INSTANCE_ID = 11;

/** The batch's node, time and instance, as TelemetryBatch.decode would give them (the last occurrence of a field wins). */
export function readBatchHeader(buf: Uint8Array): BatchHeader {
  const out: BatchHeader = { node: '', time: undefined, instanceId: '' };
  const reader = new BinaryReader(buf);
  try {
    while (reader.pos < reader.len) {
      const [field, wire] = reader.tag();
      if (field === NODE && wire === WireType.LengthDelimited) out.node = reader.string();
      else if (field === INSTANCE_ID && wire === WireType.LengthDelimited) out.instanceId = reader.string();
      else if (field === TIME && wire === WireType.LengthDelimited) {
        const t = Timestamp.decode(reader, reader.uint32());
        out.time = new Date(Number(t.seconds) * 1000 + t.nanos / 1_000_000);
      } else reader.skip(wire, field);
    }
  } catch (err) {
    throw new BatchHeaderError((err as Error).message);
  }
  return out;
}
