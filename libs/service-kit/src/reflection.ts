// gRPC server reflection (grpc.reflection.v1 and v1alpha) served straight from the descriptor
// image that buf builds (libs/proto/src/gen/descriptor.binpb): each .proto file exactly as
// compiled, under its own name, with every file it imports, so that strict clients (grpcurl,
// grpcio's reflection client) can rebuild the types. Only the services the server registered
// are listed.
//
// The image is read with a small protobuf wire reader rather than a descriptor library: the
// files are served as the bytes buf wrote, and only names are needed to index them.
import * as grpc from '@grpc/grpc-js';

/** One file of the image: its encoded FileDescriptorProto and what the index needs of it. */
interface FileEntry {
  name: string;
  bytes: Buffer;
  dependencies: string[];
}

/** The files of a FileDescriptorSet by name, and the file that declares each symbol. */
export class DescriptorIndex {
  private readonly files = new Map<string, FileEntry>();
  /** Fully-qualified name (no leading dot) of every message, field, oneof, enum, enum value, service, method and extension. */
  private readonly symbols = new Map<string, FileEntry>();
  /** Extendee type name -> extension field number -> declaring file. */
  private readonly extensions = new Map<string, Map<number, FileEntry>>();
  private readonly services = new Set<string>();

  /** `image`: a serialized google.protobuf.FileDescriptorSet (several concatenated sets are one set). */
  constructor(image: Uint8Array) {
    for (const f of fields(image)) {
      if (f.no !== 1 || typeof f.value === 'number') continue; // FileDescriptorSet.file
      const file = this.indexFile(Buffer.from(f.value));
      if (this.files.has(file.name)) throw new Error(`descriptor image: ${file.name} appears twice`);
      this.files.set(file.name, file);
    }
    for (const file of this.files.values()) {
      for (const dep of file.dependencies) {
        if (!this.files.has(dep)) throw new Error(`descriptor image: ${dep}, imported by ${file.name}, is missing`);
      }
    }
  }

  hasService(name: string): boolean {
    return this.services.has(name);
  }

  /** The file that declares `symbol` and every file it imports, directly or not; undefined when unknown. */
  fileContainingSymbol(symbol: string): Buffer[] | undefined {
    const file = this.symbols.get(symbol.replace(/^\./, ''));
    return file && this.withDependencies(file);
  }

  fileByFilename(name: string): Buffer[] | undefined {
    const file = this.files.get(name);
    return file && this.withDependencies(file);
  }

  fileContainingExtension(extendee: string, number: number): Buffer[] | undefined {
    const file = this.extensions.get(extendee.replace(/^\./, ''))?.get(number);
    return file && this.withDependencies(file);
  }

  extensionNumbers(extendee: string): number[] | undefined {
    const byNumber = this.extensions.get(extendee.replace(/^\./, ''));
    return byNumber && [...byNumber.keys()].sort((a, b) => a - b);
  }

  /** The file first (as grpc-go and grpc-java answer), then its transitive imports. */
  private withDependencies(file: FileEntry): Buffer[] {
    const seen = new Set([file.name]);
    const out = [file];
    for (let i = 0; i < out.length; i++) {
      for (const dep of out[i]!.dependencies) {
        if (seen.has(dep)) continue;
        seen.add(dep);
        out.push(this.files.get(dep)!);
      }
    }
    return out.map((f) => f.bytes);
  }

  // FileDescriptorProto: 1 name, 2 package, 3 dependency, 4 message_type, 5 enum_type, 6 service, 7 extension.
  private indexFile(bytes: Buffer): FileEntry {
    const file: FileEntry = { name: '', bytes, dependencies: [] };
    let pkg = '';
    const nested: { no: number; value: Uint8Array }[] = [];
    for (const f of fields(bytes)) {
      if (typeof f.value === 'number') continue;
      if (f.no === 1) file.name = text(f.value);
      else if (f.no === 2) pkg = text(f.value);
      else if (f.no === 3) file.dependencies.push(text(f.value));
      else if (f.no >= 4 && f.no <= 7) nested.push({ no: f.no, value: f.value });
    }
    if (!file.name) throw new Error('descriptor image: a file has no name');
    const scope = pkg ? `${pkg}.` : '';
    for (const { no, value } of nested) {
      if (no === 4) this.indexMessage(file, scope, value);
      else if (no === 5) this.indexEnum(file, scope, value);
      else if (no === 6) this.indexService(file, scope, value);
      else this.indexField(file, scope, value, true);
    }
    return file;
  }

  private add(fqn: string, file: FileEntry): void {
    if (!this.symbols.has(fqn)) this.symbols.set(fqn, file);
  }

  // DescriptorProto: 1 name, 2 field, 3 nested_type, 4 enum_type, 6 extension, 8 oneof_decl.
  private indexMessage(file: FileEntry, scope: string, bytes: Uint8Array): void {
    const name = nameOf(bytes);
    const fqn = `${scope}${name}`;
    this.add(fqn, file);
    for (const f of fields(bytes)) {
      if (typeof f.value === 'number') continue;
      if (f.no === 2) this.indexField(file, `${fqn}.`, f.value, false);
      else if (f.no === 3) this.indexMessage(file, `${fqn}.`, f.value);
      else if (f.no === 4) this.indexEnum(file, `${fqn}.`, f.value);
      else if (f.no === 6) this.indexField(file, `${fqn}.`, f.value, true);
      else if (f.no === 8) this.add(`${fqn}.${nameOf(f.value)}`, file);
    }
  }

  // FieldDescriptorProto: 1 name, 2 extendee, 3 number.
  private indexField(file: FileEntry, scope: string, bytes: Uint8Array, extension: boolean): void {
    this.add(`${scope}${nameOf(bytes)}`, file);
    if (!extension) return;
    let extendee = '';
    let number = 0;
    for (const f of fields(bytes)) {
      if (f.no === 2 && typeof f.value !== 'number') extendee = text(f.value).replace(/^\./, '');
      else if (f.no === 3 && typeof f.value === 'number') number = f.value;
    }
    const byNumber = this.extensions.get(extendee) ?? new Map<number, FileEntry>();
    byNumber.set(number, file);
    this.extensions.set(extendee, byNumber);
  }

  // EnumDescriptorProto: 1 name, 2 value (EnumValueDescriptorProto: 1 name). Enum values are
  // scoped like siblings of their enum, as in protoc.
  private indexEnum(file: FileEntry, scope: string, bytes: Uint8Array): void {
    this.add(`${scope}${nameOf(bytes)}`, file);
    for (const f of fields(bytes)) {
      if (f.no === 2 && typeof f.value !== 'number') this.add(`${scope}${nameOf(f.value)}`, file);
    }
  }

  // ServiceDescriptorProto: 1 name, 2 method (MethodDescriptorProto: 1 name).
  private indexService(file: FileEntry, scope: string, bytes: Uint8Array): void {
    const fqn = `${scope}${nameOf(bytes)}`;
    this.add(fqn, file);
    this.services.add(fqn);
    for (const f of fields(bytes)) {
      if (f.no === 2 && typeof f.value !== 'number') this.add(`${fqn}.${nameOf(f.value)}`, file);
    }
  }
}

/** Adds grpc.reflection.v1 and v1alpha to `server`, listing `services` (each must be in `index`). */
export function addReflection(server: grpc.Server, index: DescriptorIndex, services: readonly string[]): void {
  const missing = services.filter((s) => !index.hasService(s));
  if (missing.length > 0) throw new Error(`server reflection: no descriptor for ${missing.join(', ')}; run pnpm gen`);
  const listed = [...new Set(services)];
  for (const version of ['v1', 'v1alpha']) {
    const definition: grpc.ServiceDefinition = {
      ServerReflectionInfo: {
        path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        requestStream: true,
        responseStream: true,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    };
    server.addService(definition, {
      ServerReflectionInfo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (req: Buffer) => {
          call.write(answer(index, listed, req));
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
  }
}

/**
 * One ServerReflectionResponse for one ServerReflectionRequest (the same messages in v1 and
 * v1alpha). Request: 1 host, 3 file_by_filename, 4 file_containing_symbol,
 * 5 file_containing_extension {1 containing_type, 2 extension_number},
 * 6 all_extension_numbers_of_type, 7 list_services. Response: 1 valid_host,
 * 2 original_request, 4 file_descriptor_response {1 repeated bytes}, 5
 * all_extension_numbers_response {1 base_type_name, 2 repeated int32},
 * 6 list_services_response {1 repeated ServiceResponse {1 name}}, 7 error_response {1 code, 2 message}.
 */
export function answer(index: DescriptorIndex, services: readonly string[], request: Uint8Array): Buffer {
  let host = '';
  let kind = 0;
  let arg = '';
  let extensionNumber = 0;
  try {
    for (const f of fields(request)) {
      if (typeof f.value === 'number') continue;
      if (f.no === 1) host = text(f.value);
      else if (f.no === 5) {
        kind = 5;
        for (const e of fields(f.value)) {
          if (e.no === 1 && typeof e.value !== 'number') arg = text(e.value);
          else if (e.no === 2 && typeof e.value === 'number') extensionNumber = e.value;
        }
      } else if (f.no >= 3 && f.no <= 7) {
        kind = f.no;
        arg = text(f.value);
      }
    }
  } catch {
    return response(host, request, error(grpc.status.INVALID_ARGUMENT, 'malformed ServerReflectionRequest'));
  }
  const files = (found: Buffer[] | undefined, what: string): Buffer =>
    found ? message(4, Buffer.concat(found.map((b) => message(1, b)))) : error(grpc.status.NOT_FOUND, `${what} not found`);
  let body: Buffer;
  switch (kind) {
    case 3: body = files(index.fileByFilename(arg), `file ${arg}`); break;
    case 4: body = files(index.fileContainingSymbol(arg), `symbol ${arg}`); break;
    case 5: body = files(index.fileContainingExtension(arg, extensionNumber), `extension ${extensionNumber} of ${arg}`); break;
    case 6: {
      const numbers = index.extensionNumbers(arg);
      body = numbers
        ? message(5, Buffer.concat([message(1, Buffer.from(arg)), ...numbers.map((n) => Buffer.concat([tag(2, 0), varint(n)]))]))
        : error(grpc.status.NOT_FOUND, `type ${arg} not found`);
      break;
    }
    case 7: body = message(6, Buffer.concat(services.map((s) => message(1, message(1, Buffer.from(s)))))); break;
    default: body = error(grpc.status.UNIMPLEMENTED, 'unsupported ServerReflectionRequest');
  }
  return response(host, request, body);
}

function response(host: string, request: Uint8Array, body: Buffer): Buffer {
  return Buffer.concat([host ? message(1, Buffer.from(host)) : Buffer.alloc(0), message(2, Buffer.from(request)), body]);
}

function error(code: grpc.status, text: string): Buffer {
  return message(7, Buffer.concat([tag(1, 0), varint(code), message(2, Buffer.from(text))]));
}

// --- Protobuf wire format: just what descriptors and reflection messages use. ---

interface Field {
  no: number;
  /** A varint (non-negative: only field numbers, lengths and the like are read), or the bytes of a length-delimited field. */
  value: number | Uint8Array;
}

function* fields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  const readVarint = (): number => {
    let result = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length || shift > 63) throw new Error('truncated protobuf varint');
      const b = buf[pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
    }
  };
  while (pos < buf.length) {
    const key = readVarint();
    const no = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      yield { no, value: readVarint() };
    } else if (wire === 2) {
      const len = readVarint();
      if (pos + len > buf.length) throw new Error('truncated protobuf field');
      yield { no, value: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === 1 || wire === 5) {
      // Fixed-width numbers: none that the index or the reflection requests read.
      pos += wire === 1 ? 8 : 4;
      if (pos > buf.length) throw new Error('truncated protobuf field');
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
}

function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}

/** Field 1 (`name`) of a descriptor message. */
function nameOf(bytes: Uint8Array): string {
  for (const f of fields(bytes)) if (f.no === 1 && typeof f.value !== 'number') return text(f.value);
  return '';
}

/** A non-negative integer as a varint. */
function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) { out.push((v % 0x80) | 0x80); v = Math.floor(v / 0x80); }
  out.push(v);
  return Buffer.from(out);
}

function tag(no: number, wire: number): Buffer {
  return varint(no * 8 + wire);
}

function message(no: number, body: Uint8Array): Buffer {
  return Buffer.concat([tag(no, 2), varint(body.length), body]);
}
