import { describe, expect, it } from 'vitest';
import {
  ClusterState,
  computeStaticFit,
  explainRejections,
  formatRejections,
  freeGpus,
  gpuCount,
  gpuType,
  nodeReady,
  nodeSelector,
  notExcluded,
  notReserved,
  REASON_EXCLUDED,
  REASON_INSUFFICIENT_FREE,
} from '../../src/placement/index.js';
import { cluster, job } from './fixtures.js';

const [node] = cluster({ nodesPerLeaf: 1, leavesPerSpine: 1 });

describe('filters', () => {
  it('nodeReady names the state', () => {
    expect(nodeReady(node!, job('j'))).toBeUndefined();
    expect(nodeReady({ ...node!, state: 'QUARANTINED' }, job('j'))).toBe('quarantined');
  });

  it('notExcluded rejects nodes the job excludes', () => {
    expect(notExcluded(node!, job('j', { excludeNodes: ['other'] }))).toBeUndefined();
    expect(notExcluded(node!, job('j', { excludeNodes: [node!.name] }))).toBe(REASON_EXCLUDED);
  });

  it('gpuType accepts any model when the list is empty, else only listed ones', () => {
    expect(gpuType(node!, job('j'))).toBeUndefined();
    expect(gpuType(node!, job('j', { gpuTypes: ['B200', 'H100'] }))).toBeUndefined();
    expect(gpuType(node!, job('j', { gpuTypes: ['B200'] }))).toBe('gpu type H100 not in [B200]');
  });

  it('nodeSelector needs every label to match', () => {
    const labelled = { ...node!, labels: { ib: 'ndr', zone: 'a' } };
    expect(nodeSelector(labelled, job('j', { nodeSelector: { ib: 'ndr' } }))).toBeUndefined();
    expect(nodeSelector(labelled, job('j', { nodeSelector: { ib: 'ndr', zone: 'b' } }))).toBe('label zone=b not matched');
  });

  it('gpuCount is a static misfit, freeGpus a capacity one', () => {
    expect(gpuCount(node!, job('j', { gpusPerNode: 16 }))).toBe('node has 8 GPUs');
    expect(freeGpus(node!, job('j', { gpusPerNode: 4 }), { free: 3 })).toBe(REASON_INSUFFICIENT_FREE);
    expect(freeGpus(node!, job('j', { gpusPerNode: 4 }), { free: 4 })).toBeUndefined();
    expect(freeGpus({ ...node!, freeGpus: [0, 1] }, job('j', { gpusPerNode: 4 }))).toBe(REASON_INSUFFICIENT_FREE);
  });

  it('notReserved lets a job use a reserved node only within the slack or when it ends first', () => {
    const r = { jobId: 'head', slack: 2, endsBefore: false };
    expect(notReserved(node!, job('j', { gpusPerNode: 2 }), { free: 8, reservation: r })).toBeUndefined();
    expect(notReserved(node!, job('j', { gpusPerNode: 4 }), { free: 8, reservation: r })).toBe('reserved for head');
    expect(notReserved(node!, job('j', { gpusPerNode: 4 }), { free: 8, reservation: { ...r, endsBefore: true } })).toBeUndefined();
  });
});

describe('rejection counts', () => {
  it('counts the first failing filter per node, static ones once per shape', () => {
    const nodes = cluster({ leavesPerSpine: 2, nodesPerLeaf: 4, model: (i) => (i < 2 ? 'B200' : 'H100') });
    nodes[2]!.state = 'QUARANTINED';
    nodes[3]!.freeGpus = [0, 1];
    const state = new ClusterState(nodes);
    const j = job('j', { gpuTypes: ['H100'], gpusPerNode: 4 });
    const fit = computeStaticFit(state, j);
    expect(fit.rejections).toEqual({ 'gpu type B200 not in [H100]': 2, quarantined: 1 });
    expect(explainRejections(state, j, fit, undefined, false)).toEqual({ 'gpu type B200 not in [H100]': 2, quarantined: 1, [REASON_INSUFFICIENT_FREE]: 1 });
  });

  it('formats most frequent first with thousands separators', () => {
    expect(formatRejections({ quarantined: 3, 'insufficient free GPUs': 4011, 'gpu type H100 not in [B200]': 60 })).toBe(
      '4,011 nodes: insufficient free GPUs; 60: gpu type H100 not in [B200]; 3: quarantined',
    );
    expect(formatRejections({ draining: 1 })).toBe('1 node: draining');
    expect(formatRejections({})).toBe('');
  });
});
