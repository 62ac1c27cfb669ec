// Every NATS payload is a gantry.v1 protobuf message; these helpers keep encode/decode and
// the "a malformed message is logged and dropped, never crashes" rule in one place.
import { BinaryWriter, type BinaryReader } from '@bufbuild/protobuf/wire';

export interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
}

/**
 * The writer encode() reuses: a new one starts at a few bytes and grows by copying, an
 * allocation and a copy per doubling of every message (a scheduling pass encodes thousands of
 * commands). finish() hands out a copy of the bytes and resets it; a writer that grew past
 * KEPT_WRITER_BYTES, or that a failed encode left half-written, is replaced.
 */
let writer = new BinaryWriter();
const KEPT_WRITER_BYTES = 64 * 1024;

export function encode<T>(codec: MessageCodec<T>, message: T): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = codec.encode(message, writer).finish();
  } catch (err) {
    writer = new BinaryWriter();
    throw err;
  }
  if (bytes.length > KEPT_WRITER_BYTES) writer = new BinaryWriter();
  return bytes;
}

export class DecodeError extends Error {
  override name = 'DecodeError';
}

export function decode<T>(codec: MessageCodec<T>, data: Uint8Array, what: string): T {
  try {
    return codec.decode(data);
  } catch (cause) {
    throw new DecodeError(`malformed ${what} message (${data.length} bytes): ${(cause as Error).message}`, { cause });
  }
}
