// Decoding requests strictly. ts-proto's decoders use @bufbuild/protobuf's BinaryReader, whose
// default UTF-8 decoder replaces invalid bytes with U+FFFD: a command or env value with
// invalid bytes would silently run altered. A reader with a fatal decoder makes them fail.
// grpc-js answers a deserializer that throws with INTERNAL; so the wrapped deserializer never
// throws and returns a MalformedRequest instead, which the gateway answers with
// INVALID_ARGUMENT before any handler sees it.
import { BinaryReader } from '@bufbuild/protobuf/wire';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class MalformedRequest {
  constructor(readonly reason: string) {}
}

export function isMalformed(v: unknown): v is MalformedRequest {
  return v instanceof MalformedRequest;
}

/** A BinaryReader over `bytes` that throws on invalid UTF-8 in any string field. */
export function strictReader(bytes: Uint8Array): BinaryReader {
  return new BinaryReader(bytes, (b) => strictUtf8.decode(b));
}

/**
 * Decodes with `decode` (a generated `X.decode`, or a grpc-js requestDeserialize that passes
 * its argument to one) through a strict reader; a MalformedRequest when the bytes are not a
 * valid message or hold invalid UTF-8.
 */
export function decodeStrict<T>(decode: (input: BinaryReader | Uint8Array) => T, bytes: Uint8Array): T | MalformedRequest {
  try {
    return decode(strictReader(bytes));
  } catch (err) {
    const e = err as { code?: unknown; name?: unknown; message?: unknown };
    if (e.code === 'ERR_ENCODING_INVALID_ENCODED_DATA' || (e.name === 'TypeError' && /encoded data was not valid/i.test(String(e.message)))) {
      return new MalformedRequest('request has a string field that is not valid UTF-8');
    }
    return new MalformedRequest(`request is not a valid protobuf message (${String(e.message ?? err).slice(0, 80)})`);
  }
}

interface MethodDefinition {
  requestDeserialize: (bytes: Buffer) => unknown;
}

/** A copy of a grpc-js service definition whose requests are decoded strictly (see above). */
export function strictService<D extends Record<string, MethodDefinition>>(definition: D): D {
  const out: Record<string, MethodDefinition> = {};
  for (const [name, m] of Object.entries(definition)) {
    const original = m.requestDeserialize;
    // The generated deserializer is `(value) => X.decode(value)`, and decode accepts a reader.
    out[name] = { ...m, requestDeserialize: (bytes: Buffer) => decodeStrict((input) => original(input as unknown as Buffer), bytes) };
  }
  return out as D;
}
