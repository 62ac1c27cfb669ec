// Server reflection as a strict client sees it (grpcurl, grpcio's reflection client): every
// advertised service resolves to its real .proto file, every import can be fetched by name,
// the descriptors build a registry that checks every type and import, and any method can be
// called from JSON with nothing but what reflection returned. Each port advertises only the
// services it serves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
// @bufbuild/protobuf (the strict client here; the same version as @gantry/proto's).
import {
  create, createFileRegistry, fromBinary, fromJson, toBinary, toJson,
  type DescMessage, type DescService, type FileRegistry, type JsonValue,
} from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';
import { TestStack } from '../harness/stack.js';

let stack: TestStack;

beforeAll(async () => { stack = await new TestStack({ agents: 0, schedulers: 1 }).start(); });
afterAll(async () => { await stack?.stop(); });

const reflectionServices = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];

/** Status code and message of a reflection ErrorResponse. */
class ReflectionError extends Error {
  constructor(readonly code: number, message: string) { super(message); }
}

interface ReflectionReply {
  files?: Uint8Array[];
  services?: string[];
  error?: ReflectionError;
}

/**
 * A reflection client over one ServerReflectionInfo stream; the messages of reflection.proto
 * are encoded by hand so that the test needs none of the server's descriptors to start with.
 */
class ReflectionClient {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Uint8Array, Buffer>;
  private readonly waiting: { resolve: (r: ReflectionReply) => void; reject: (e: Error) => void }[] = [];

  constructor(address: string, version: 'v1' | 'v1alpha' = 'v1') {
    this.client = new grpc.Client(address, stack.credentialsFor(address));
    this.call = this.client.makeBidiStreamRequest(`/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b);
    this.call.on('data', (b: Buffer) => this.waiting.shift()?.resolve(decodeReply(b)));
    this.call.on('error', (e: Error) => { for (const w of this.waiting.splice(0)) w.reject(e); });
  }

  /** Sends one request: `field` is the number of the message_request oneof member. */
  private ask(field: number, value: string): Promise<ReflectionReply> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.call.write(new BinaryWriter().tag(field, WireType.LengthDelimited).string(value).finish());
    });
  }

  async listServices(): Promise<string[]> {
    const r = await this.ask(7, '*');
    if (r.error) throw r.error;
    return r.services ?? [];
  }

  async fileContainingSymbol(symbol: string): Promise<FileDescriptorProto[]> {
    return files(await this.ask(4, symbol));
  }

  async fileByFilename(name: string): Promise<FileDescriptorProto[]> {
    return files(await this.ask(3, name));
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

function files(r: ReflectionReply): FileDescriptorProto[] {
  if (r.error) throw r.error;
  return (r.files ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

/** ServerReflectionResponse: 4 file_descriptor_response, 6 list_services_response, 7 error_response. */
function decodeReply(b: Uint8Array): ReflectionReply {
  const reply: ReflectionReply = {};
  const r = new BinaryReader(b);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 4) {
      const fr = new BinaryReader(r.bytes());
      reply.files = [];
      while (fr.pos < fr.len) {
        const [n, w] = fr.tag();
        if (n === 1) reply.files.push(fr.bytes()); else fr.skip(w);
      }
    } else if (no === 6) {
      const lr = new BinaryReader(r.bytes());
      reply.services = [];
      while (lr.pos < lr.len) {
        const [n, w] = lr.tag();
        if (n !== 1) { lr.skip(w); continue; }
        const sr = new BinaryReader(lr.bytes());
        while (sr.pos < sr.len) {
          const [sn, sw] = sr.tag();
          if (sn === 1) reply.services.push(sr.string()); else sr.skip(sw);
        }
      }
    } else if (no === 7) {
      const er = new BinaryReader(r.bytes());
      let code = 0;
      let message = '';
      while (er.pos < er.len) {
        const [n, w] = er.tag();
        if (n === 1) code = er.int32(); else if (n === 2) message = er.string(); else er.skip(w);
      }
      reply.error = new ReflectionError(code, message);
    } else {
      r.skip(wt);
    }
  }
  return reply;
}

/**
 * What a strict client does: the file of each service, then every import by file name until
 * nothing is missing, then a registry built in import order, which fails on any unresolved
 * type. Also checks protoc's visibility rule: a file may only use types of its own imports.
 */
async function reflect(address: string, version: 'v1' | 'v1alpha' = 'v1'): Promise<{ services: string[]; registry: FileRegistry; files: Map<string, FileDescriptorProto> }> {
  const rc = new ReflectionClient(address, version);
  try {
    const services = await rc.listServices();
    const got = new Map<string, FileDescriptorProto>();
    const add = (fs: FileDescriptorProto[]): void => {
      for (const f of fs) {
        const seen = got.get(f.name);
        // The same file name must always come back with the same content.
        if (seen) expect(toBinary(FileDescriptorProtoSchema, seen)).toEqual(toBinary(FileDescriptorProtoSchema, f));
        else got.set(f.name, f);
      }
    };
    for (const svc of services) {
      const fs = await rc.fileContainingSymbol(svc);
      expect(fs.length, `file_containing_symbol ${svc}`).toBeGreaterThan(0);
      const pkg = svc.slice(0, svc.lastIndexOf('.'));
      const own = svc.slice(svc.lastIndexOf('.') + 1);
      // The first file is the one that declares the service.
      expect(fs[0]!.package, svc).toBe(pkg);
      expect(fs[0]!.service.map((s) => s.name), svc).toContain(own);
      add(fs);
    }
    for (let missing = [...got.values()].flatMap((f) => f.dependency).filter((d) => !got.has(d)); missing.length > 0;
      missing = [...got.values()].flatMap((f) => f.dependency).filter((d) => !got.has(d))) {
      for (const name of new Set(missing)) {
        const fs = await rc.fileByFilename(name);
        expect(fs[0]?.name, `file_by_filename ${name}`).toBe(name);
        add(fs);
      }
    }
    // Dependencies first, as protoc's DescriptorPool and createFileRegistry require.
    const ordered: FileDescriptorProto[] = [];
    const visit = (name: string, path: string[]): void => {
      if (ordered.some((f) => f.name === name)) return;
      expect(path, 'import cycle').not.toContain(name);
      const f = got.get(name)!;
      for (const d of f.dependency) visit(d, [...path, name]);
      ordered.push(f);
    };
    for (const name of got.keys()) visit(name, []);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
    for (const file of registry.files) {
      // (A DescFile's name lacks the .proto suffix; its proto has the file name.)
      const visible = new Set([file.proto.name, ...file.proto.dependency]);
      const uses = (what: string, desc: { file: { proto: { name: string } } } | undefined): void => {
        if (desc) expect(visible.has(desc.file.proto.name), `${what}: ${desc.file.proto.name} is not imported by ${file.proto.name}`).toBe(true);
      };
      for (const msg of file.messages.flatMap(function all(m: DescMessage): DescMessage[] { return [m, ...m.nestedMessages.flatMap(all)]; })) {
        for (const field of msg.fields) uses(`${msg.typeName}.${field.name}`, field.message ?? field.enum);
      }
      for (const svc of file.services) {
        for (const m of svc.methods) { uses(`${svc.typeName}.${m.name}`, m.input); uses(`${svc.typeName}.${m.name}`, m.output); }
      }
    }
    return { services, registry, files: got };
  } finally {
    rc.close();
  }
}

/**
 * One call of any kind with an already-encoded request: the first reply (unary, or the first
 * message of a server stream, which is then cancelled) or the status the server ended with.
 */
function callAnyKind(address: string, path: string, kind: string, body: Uint8Array): Promise<{ code: grpc.status; details: string; reply?: Buffer }> {
  const client = new grpc.Client(address, stack.credentialsFor(address));
  const ser = (b: Uint8Array): Buffer => Buffer.from(b);
  const de = (b: Buffer): Buffer => b;
  const deadline = Date.now() + 10_000;
  return new Promise((resolve) => {
    const done = (r: { code: grpc.status; details: string; reply?: Buffer }): void => { client.close(); resolve(r); };
    if (kind === 'unary') {
      client.makeUnaryRequest(path, ser, de, body, { deadline }, (err, res) => done(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '', reply: res }));
    } else if (kind === 'server_streaming') {
      const call = client.makeServerStreamRequest(path, ser, de, body, { deadline });
      let settled = false;
      // A stream that stays open without a message (a watch with nothing to say) was accepted.
      const idle = setTimeout(() => { settled = true; call.cancel(); done({ code: grpc.status.OK, details: 'open' }); }, 1_000);
      call.on('data', (b: Buffer) => { if (settled) return; settled = true; clearTimeout(idle); call.cancel(); done({ code: grpc.status.OK, details: '', reply: b }); });
      call.on('error', (e: grpc.ServiceError) => { if (settled) return; settled = true; clearTimeout(idle); done({ code: e.code, details: e.details }); });
      call.on('end', () => { if (settled) return; settled = true; clearTimeout(idle); done({ code: grpc.status.OK, details: 'ended' }); });
    } else {
      client.close();
      throw new Error(`${path}: ${kind} methods are not exercised here`);
    }
  });
}

/** A unary call built from JSON with reflected descriptors only, answered as JSON. */
function callJson(address: string, svc: DescService, method: string, request: JsonValue, registry: FileRegistry): Promise<JsonValue> {
  const m = svc.methods.find((x) => x.name === method);
  if (!m) throw new Error(`${svc.typeName} has no method ${method}`);
  expect(m.methodKind).toBe('unary');
  const body = toBinary(m.input, fromJson(m.input, request, { registry }));
  const client = new grpc.Client(address, stack.credentialsFor(address));
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/${svc.typeName}/${m.name}`, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b, body, { deadline: Date.now() + 10_000 }, (err, res) => {
      client.close();
      if (err || !res) return reject(err ?? new Error('no reply'));
      resolve(toJson(m.output, fromBinary(m.output, res), { registry }));
    });
  });
}

function service(registry: FileRegistry, name: string): DescService {
  const s = registry.getService(name);
  if (!s) throw new Error(`${name} is not in the reflected descriptors`);
  return s;
}

describe('server reflection, as a strict client uses it', () => {
  it.each([
    ['gateway', () => stack.gatewayAddr, ['gantry.v1.AdminService', 'gantry.v1.AuthService', 'gantry.v1.JobService', 'gantry.v1.NodeService']],
    ['scheduler', () => stack.schedulerAddrs[0]!, ['gantry.v1.AdminService', 'gantry.v1.JobService', 'gantry.v1.NodeService']],
    ['checkpoint', () => stack.checkpointAddr, ['gantry.v1.CheckpointService', 'gantry.v1.StorageService']],
  ] as const)('%s advertises only its own services, each resolving with every method typed', async (_name, addr, own) => {
    for (const version of ['v1', 'v1alpha'] as const) {
      const { services, registry } = await reflect(addr(), version);
      expect([...services].sort()).toEqual([...own, 'grpc.health.v1.Health', ...reflectionServices].sort());
      for (const name of services) {
        const svc = service(registry, name);
        expect(svc.methods.length, name).toBeGreaterThan(0);
        for (const m of svc.methods) {
          expect(registry.getMessage(m.input.typeName), `${name}.${m.name} input`).toBe(m.input);
          expect(registry.getMessage(m.output.typeName), `${name}.${m.name} output`).toBe(m.output);
        }
      }
      // The health service answers from JSON through its reflected descriptor.
      const health = service(registry, 'grpc.health.v1.Health');
      expect(await callJson(addr(), health, 'Check', { service: own[0] }, registry)).toEqual({ status: 'SERVING' });
    }
  });

  it('serves the real .proto files by name, well-known types included', async () => {
    const rc = new ReflectionClient(stack.gatewayAddr);
    try {
      const [job, ...deps] = await rc.fileByFilename('gantry/v1/job.proto');
      expect(job!.name).toBe('gantry/v1/job.proto');
      expect(job!.dependency).toContain('google/protobuf/timestamp.proto');
      expect(deps.map((f) => f.name)).toContain('google/protobuf/timestamp.proto');
      const [ts] = await rc.fileContainingSymbol('google.protobuf.Timestamp');
      expect(ts!.name).toBe('google/protobuf/timestamp.proto');
      expect(ts!.messageType.map((m) => m.name)).toEqual(['Timestamp']);
      const [svc] = await rc.fileContainingSymbol('gantry.v1.JobService');
      expect(svc!.name).toBe('gantry/v1/job_service.proto');
      expect(svc!.service.map((s) => s.name)).toEqual(['JobService']);
      // A method and a message resolve to their files too (grpcurl describe).
      expect((await rc.fileContainingSymbol('gantry.v1.JobService.GetJob'))[0]!.name).toBe('gantry/v1/job_service.proto');
      expect((await rc.fileContainingSymbol('gantry.v1.RankStatus'))[0]!.name).toBe('gantry/v1/job.proto');
      await expect(rc.fileByFilename('gantry/v1/nope.proto')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
      await expect(rc.fileContainingSymbol('gantry.v1.Nope')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    } finally {
      rc.close();
    }
  });

  it('makes every gateway job method callable from JSON through reflection alone', async () => {
    const { registry } = await reflect(stack.gatewayAddr);
    const jobs = service(registry, 'gantry.v1.JobService');
    const submitted = await callJson(stack.gatewayAddr, jobs, 'SubmitJob', {
      spec: { name: 'reflected', tenant: 'team-r', nodes: 1, gpusPerNode: 1, command: ['sleep', '60'] },
      idempotencyKey: 'reflection-test',
    }, registry) as { job: { id: string; spec: { name: string } }; created: boolean };
    expect(submitted.created).toBe(true);
    expect(submitted.job.spec.name).toBe('reflected');
    const id = submitted.job.id;
    const got = await callJson(stack.gatewayAddr, jobs, 'GetJob', { jobId: id }, registry) as { job: { id: string; state: string; createdAt?: string } };
    expect(got.job.id).toBe(id);
    expect(got.job.state).toMatch(/^JOB_STATE_/);
    const listed = await callJson(stack.gatewayAddr, jobs, 'ListJobs', { tenant: 'team-r' }, registry) as { jobs: { id: string }[] };
    expect(listed.jobs.map((j) => j.id)).toContain(id);
    const explained = await callJson(stack.gatewayAddr, jobs, 'ExplainJob', { jobId: id }, registry) as { jobId: string };
    expect(explained.jobId).toBe(id);
    const nodes = service(registry, 'gantry.v1.NodeService');
    expect(nodes.methods.length).toBeGreaterThan(0);
  });

  // Every method of every advertised service, unary or streaming, on every port: the request
  // is built from JSON with the reflected descriptors alone and the server must decode it and
  // answer from its handler (a reply, or a status such as INVALID_ARGUMENT or NOT_FOUND for an
  // empty request), never UNIMPLEMENTED, INTERNAL or UNKNOWN, which is what a client sees when
  // the reflected method or message does not match what the server really serves.
  // The scheduler's JobService leaves the two client streams to the gateway and says so.
  const gatewayOnly = new Set(['service:gantry.v1.JobService.WatchJob', 'service:gantry.v1.JobService.StreamLogs']);
  it.each([
    ['gateway', () => stack.gatewayAddr],
    ['scheduler', () => stack.schedulerAddrs[0]!],
    ['checkpoint', () => stack.checkpointAddr],
  ] as const)('makes every method the %s serves callable from JSON through reflection alone', async (_name, addr) => {
    const { services, registry } = await reflect(addr());
    const called: string[] = [];
    for (const name of services.filter((s) => s.startsWith('gantry.'))) {
      const svc = service(registry, name);
      for (const m of svc.methods) {
        const body = toBinary(m.input, fromJson(m.input, {}, { registry }));
        const outcome = await callAnyKind(addr(), `/${svc.typeName}/${m.name}`, m.methodKind, body);
        if (outcome.reply) fromBinary(m.output, outcome.reply); // decodes with the reflected type
        const what = `${name}.${m.name}: ${outcome.code} ${outcome.details}`;
        if (gatewayOnly.has(`${addr() === stack.gatewayAddr ? 'gateway' : 'service'}:${name}.${m.name}`)) {
          expect(outcome, what).toMatchObject({ code: grpc.status.UNIMPLEMENTED, details: `${m.name} is served by the gateway` });
        } else {
          expect([grpc.status.UNIMPLEMENTED, grpc.status.INTERNAL, grpc.status.UNKNOWN], what).not.toContain(outcome.code);
        }
        called.push(`${name}.${m.name}`);
      }
    }
    expect(called.length).toBeGreaterThan(3);
  });
});
