// Every NATS payload is a gantry.v1 protobuf message; these helpers keep encode/decode and
// the "a malformed message is logged and dropped, never crashes" rule in one place.
import type { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';

export interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
}

export function encode<T>(codec: MessageCodec<T>, message: T): Uint8Array {
  return codec.encode(message).finish();
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
