import { describe, expect, it } from 'vitest';
import { JobState, NodeState, TopologyRequirement } from '@gantry/proto';
import { UsageError } from '../src/errors.js';
import { parseDuration, parseInteger, parseJobStateFlag, parseKeyValue, parseNodeStateFlag, parseSeconds, parseTopology, topologyName } from '../src/parse.js';

describe('parseDuration', () => {
  it.each([
    ['90s', 90_000],
    ['30m', 1_800_000],
    ['2h', 7_200_000],
    ['1h30m', 5_400_000],
    ['1d', 86_400_000],
    ['500ms', 500],
    ['1.5m', 90_000],
    ['45', 45_000],
    [' 10s ', 10_000],
  ])('%s -> %i ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 'abc', '5x', '10 s', '-5s', 's', '1h junk', '5sm'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError);
  });

  it('names the problem', () => {
    expect(() => parseDuration('5x')).toThrow('invalid duration "5x" (use e.g. 90s, 30m, 2h, 1h30m)');
  });
});

describe('parseSeconds', () => {
  it('requires whole seconds', () => {
    expect(parseSeconds('2m')).toBe(120);
    expect(() => parseSeconds('1500ms')).toThrow('must be a whole number of seconds');
  });
});

describe('parseInteger', () => {
  it('accepts integers in range', () => {
    expect(parseInteger('8')).toBe(8);
    expect(parseInteger('65535', { min: 1, max: 65535 })).toBe(65535);
  });

  it.each(['x', '1.5', '-1', '', '0x10', '1e3'])('rejects %j', (t) => expect(() => parseInteger(t)).toThrow(UsageError));

  it('rejects out-of-range values', () => {
    expect(() => parseInteger('0', { min: 1 })).toThrow('"0" is not an integer in 1..4294967295');
    expect(() => parseInteger('70000', { min: 1, max: 65535 })).toThrow(UsageError);
  });
});

describe('parseKeyValue', () => {
  it('splits at the first =', () => {
    expect(parseKeyValue('A=1')).toEqual(['A', '1']);
    expect(parseKeyValue('OPTS=--x=y')).toEqual(['OPTS', '--x=y']);
    expect(parseKeyValue('EMPTY=')).toEqual(['EMPTY', '']);
  });

  it.each(['A', '=1', ''])('rejects %j', (t) => expect(() => parseKeyValue(t)).toThrow('expected KEY=VALUE'));
});

describe('enums', () => {
  it('parses topologies by their flag names', () => {
    expect(parseTopology('any')).toBe(TopologyRequirement.TOPOLOGY_REQUIREMENT_UNSPECIFIED);
    expect(parseTopology('same-switch')).toBe(TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_SWITCH);
    expect(topologyName(TopologyRequirement.TOPOLOGY_REQUIREMENT_SAME_NVLINK_DOMAIN)).toBe('same-nvlink-domain');
    expect(() => parseTopology('rack')).toThrow('unknown topology "rack" (one of any, same-nvlink-domain, same-switch, same-spine)');
  });

  it('parses job and node states case-insensitively', () => {
    expect(parseJobStateFlag('running')).toBe(JobState.JOB_STATE_RUNNING);
    expect(parseJobStateFlag('FAILED')).toBe(JobState.JOB_STATE_FAILED);
    expect(parseNodeStateFlag('quarantined')).toBe(NodeState.NODE_STATE_QUARANTINED);
    expect(() => parseJobStateFlag('unspecified')).toThrow(/unknown job state "unspecified" \(one of pending, scheduled, running/);
    expect(() => parseNodeStateFlag('up')).toThrow(/unknown node state "up"/);
  });
});
