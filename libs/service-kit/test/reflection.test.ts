// The reflection index over the generated descriptor image: real files under their own names,
// each with every import, and symbols down to fields and enum values. The end-to-end check
// with a strict client is test/e2e/reflection.test.ts.
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { loadDescriptorSet } from '@gantry/proto';
import { DescriptorIndex, addReflection, answer } from '../src/reflection.js';

const index = new DescriptorIndex(loadDescriptorSet());

/** A FileDescriptorProto's name: buf writes field 1 first (0x0a, length, bytes). */
function fileName(b: Buffer): string {
  expect(b[0]).toBe(0x0a);
  return b.subarray(2, 2 + b[1]!).toString('utf8');
}

function names(files: Buffer[] | undefined): string[] {
  if (!files) throw new Error('not found');
  return files.map(fileName);
}

/** field 1 (name) and field 3 (dependency), length below 128. */
function fileProto(name: string, deps: string[] = []): Buffer {
  const str = (no: number, s: string): Buffer => Buffer.concat([Buffer.from([(no << 3) | 2, s.length]), Buffer.from(s)]);
  return Buffer.concat([str(1, name), ...deps.map((d) => str(3, d))]);
}

function fileSet(...files: Buffer[]): Buffer {
  return Buffer.concat(files.map((f) => Buffer.concat([Buffer.from([0x0a, f.length]), f])));
}

describe('reflection descriptor index', () => {
  it('knows every service a Gantry server can register, and the standard gRPC ones', () => {
    for (const s of ['gantry.v1.JobService', 'gantry.v1.NodeService', 'gantry.v1.AdminService', 'gantry.v1.CheckpointService',
      'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']) {
      expect(index.hasService(s), s).toBe(true);
    }
  });

  it('answers with the declaring file first, then every file it imports, directly or not', () => {
    expect(names(index.fileContainingSymbol('gantry.v1.JobService'))).toEqual(['gantry/v1/job_service.proto', 'gantry/v1/job.proto', 'google/protobuf/timestamp.proto', 'gantry/v1/checkpoint.proto']);
    expect(new Set(names(index.fileByFilename('gantry/v1/agent.proto')))).toEqual(new Set(['gantry/v1/agent.proto', 'gantry/v1/job.proto', 'gantry/v1/checkpoint.proto', 'gantry/v1/node.proto', 'google/protobuf/timestamp.proto']));
    expect(names(index.fileByFilename('google/protobuf/duration.proto'))).toEqual(['google/protobuf/duration.proto']);
    expect(names(index.fileContainingSymbol('grpc.health.v1.Health'))).toEqual(['grpc/health/v1/health.proto']);
  });

  it('finds methods, nested messages, fields, enums and enum values', () => {
    expect(names(index.fileContainingSymbol('gantry.v1.JobService.GetJob'))[0]).toBe('gantry/v1/job_service.proto');
    expect(names(index.fileContainingSymbol('.gantry.v1.RankStatus'))[0]).toBe('gantry/v1/job.proto');
    expect(names(index.fileContainingSymbol('gantry.v1.RankStatus.started_at'))[0]).toBe('gantry/v1/job.proto');
    expect(names(index.fileContainingSymbol('gantry.v1.RANK_PHASE_STARTED'))[0]).toBe('gantry/v1/job.proto');
    expect(names(index.fileContainingSymbol('grpc.health.v1.HealthCheckResponse.ServingStatus'))[0]).toBe('grpc/health/v1/health.proto');
    expect(names(index.fileContainingSymbol('google.protobuf.Timestamp'))).toEqual(['google/protobuf/timestamp.proto']);
    expect(index.fileContainingSymbol('gantry.v1.Nope')).toBeUndefined();
    expect(index.fileByFilename('gantry/v1/nope.proto')).toBeUndefined();
  });

  it('refuses an image with a missing import or a file twice', () => {
    expect(() => new DescriptorIndex(fileSet(fileProto('a.proto', ['b.proto'])))).toThrow(/b\.proto, imported by a\.proto, is missing/);
    expect(() => new DescriptorIndex(fileSet(fileProto('a.proto'), fileProto('a.proto')))).toThrow(/a\.proto appears twice/);
    expect(names(new DescriptorIndex(fileSet(fileProto('a.proto', ['b.proto']), fileProto('b.proto'))).fileByFilename('a.proto'))).toEqual(['a.proto', 'b.proto']);
  });

  it('encodes list, file and error responses, echoing the request', () => {
    // list_services (7) = "*"
    const list = answer(index, ['gantry.v1.JobService', 'grpc.health.v1.Health'], Buffer.from([0x3a, 0x01, 0x2a]));
    // original_request (2) then list_services_response (6) { service (1) { name (1) } ... }
    const svc = (s: string): Buffer => Buffer.concat([Buffer.from([0x0a, s.length + 2, 0x0a, s.length]), Buffer.from(s)]);
    const services = Buffer.concat([svc('gantry.v1.JobService'), svc('grpc.health.v1.Health')]);
    expect(list).toEqual(Buffer.concat([Buffer.from([0x12, 0x03, 0x3a, 0x01, 0x2a, 0x32, services.length]), services]));
    // file_containing_symbol (4) = "x.Y", unknown: error_response (7) { error_code (1) = NOT_FOUND }
    const missing = answer(index, [], Buffer.from([0x22, 0x03, 0x78, 0x2e, 0x59]));
    expect(missing.subarray(7, 11)).toEqual(Buffer.from([0x3a, missing.length - 9, 0x08, grpc.status.NOT_FOUND]));
    expect(missing.toString('latin1')).toContain('symbol x.Y not found');
    // An empty request asks for nothing known.
    const empty = answer(index, [], Buffer.alloc(0));
    expect(empty.subarray(0, 6)).toEqual(Buffer.from([0x12, 0x00, 0x3a, empty.length - 4, 0x08, grpc.status.UNIMPLEMENTED]));
    // A truncated one is refused, not thrown.
    expect(answer(index, [], Buffer.from([0x22, 0x09, 0x78])).toString('latin1')).toContain('malformed ServerReflectionRequest');
  });

  it('will not advertise a service it has no descriptor for', () => {
    const server = new grpc.Server();
    expect(() => addReflection(server, index, ['gantry.v1.Unknown'])).toThrow(/no descriptor for gantry\.v1\.Unknown/);
  });
});
