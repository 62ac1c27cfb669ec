import { describe, expect, it } from 'vitest';
import { PickleError, PyDict, PyGlobal, PyObject, PySet, PyTuple, field, seq, unpickle, type PyValue } from '../src/pickle.js';

// Produced by CPython 3.11: pickle.dumps({'a': [1, -2**40, 2**70, 1.5, 'x\u00e9\n', True, None], 't': (1, 2), 's': {3}}, protocol=P)
const SAMPLE: Record<number, string> = {
  0: '286470300a56610a70310a286c70320a49310a614c2d313039393531313632373737364c0a614c313138303539313632303731373431313330333432344c0a6146312e350a615678e95c75303030610a70330a614930310a614e617356740a70340a2849310a49320a7470350a7356730a70360a635f5f6275696c74696e5f5f0a7365740a70370a28286c70380a49330a617470390a527031300a732e',
  2: '80027d71002858010000006171015d7102284b018a060000000000ff8a09000000000000000040473ff8000000000000580400000078c3a90a7103884e6558010000007471044b014b028671055801000000737106635f5f6275696c74696e5f5f0a7365740a71075d71084b036185710952710a752e',
  4: '80049548000000000000007d94288c0161945d94284b018a060000000000ff8a09000000000000000040473ff80000000000008c0478c3a90a94884e658c0174944b014b0286948c0173948f94284b0390752e',
  5: '80059548000000000000007d94288c0161945d94284b018a060000000000ff8a09000000000000000040473ff80000000000008c0478c3a90a94884e658c0174944b014b0286948c0173948f94284b0390752e',
};
const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));

describe('unpickle', () => {
  it.each([0, 2, 4, 5])('reads protocol %i, with signed and big integers', (p) => {
    const v = unpickle(hex(SAMPLE[p]!)).value;
    expect(v).toBeInstanceOf(PyDict);
    expect(field(v, 'a')).toEqual([1, -1099511627776, 2n ** 70n, 1.5, 'x\u00e9\n', true, null]);
    expect(seq(field(v, 't'))).toEqual([1, 2]);
    const s = field(v, 's');
    // protocol 0/2 pickle a set as REDUCE(builtins.set, ([3],)); 4+ as EMPTY_SET + ADDITEMS
    if (s instanceof PySet) expect(s.items).toEqual([3]);
    else expect(s instanceof PyObject && s.className === '__builtin__.set').toBe(true);
  });

  it('records an OrderedDict as a call with its items, calling nothing', () => {
    const v = unpickle(hex('800263636f6c6c656374696f6e730a4f726465726564446963740a71002952710158010000006b71024b01732e')).value;
    expect(v).toBeInstanceOf(PyObject);
    expect((v as PyObject).className).toBe('collections.OrderedDict');
    expect(field(v, 'k')).toBe(1);
  });

  it('keeps a self-referencing list as a cycle without looping', () => {
    const v = unpickle(hex('80049506000000000000005d946800612e')).value as PyValue[];
    expect(v[0]).toBe(v);
  });

  it('does not let __proto__ keys reach any prototype', () => {
    const v = unpickle(hex('80049530000000000000007d94288c095f5f70726f746f5f5f947d948c08706f6c6c757465649488738c0b636f6e7374727563746f72944b01752e')).value as PyDict;
    expect(v.get('__proto__')).toBeInstanceOf(PyDict);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(v)).toBe(PyDict.prototype);
  });

  it('turns globals and calls into records: os.system is named, never run', () => {
    // pickle.dumps of an object whose __reduce__ is (os.system, ('touch ...',)), protocol 4
    const bytes = hex('80049520000000000000008c05706f736978948c0673797374656d9493948c05746f75636894859452942e');
    const v = unpickle(bytes).value as PyObject;
    expect(v.callee).toEqual(new PyGlobal('posix', 'system'));
    expect(v.args).toEqual(['touch']);
  });

  it.each([
    ['empty input', ''],
    ['truncated frame', '800495ff'],
    ['no STOP', '80044b01'],
    ['unknown opcode', '8004ff'],
    ['protocol 6', '8006'],
    ['stack underflow', '80042e'],
    ['memo miss', '8004680a2e'],
    ['length past the end', '80048e00000000ffffffff'],
    ['BUILD on an int', '80044b014b02622e'],
    ['APPEND to a dict', '80047d4b01612e'],
    ['odd SETITEMS', '80047d284b01752e'],
    ['out-of-band buffer', '8005972e'],
    ['extension code', '8002820a2e'],
    ['unbalanced MARK at STOP', '8004284b012e'],
  ])('rejects %s with a PickleError', (_name, h) => {
    expect(() => unpickle(hex(h))).toThrow(PickleError);
  });

  it('bounds size, opcodes, stack and integer width', () => {
    expect(() => unpickle(new Uint8Array(100), { maxBytes: 10 })).toThrow(/over the limit/);
    const marks = new Uint8Array(1000).fill(0x28); // MARK x 1000
    expect(() => unpickle(marks, { maxStack: 100 })).toThrow(/too deep/);
    expect(() => unpickle(marks, { maxOps: 10 })).toThrow(/too many/);
    const long4 = Buffer.concat([Buffer.from('8b00100000', 'hex'), Buffer.alloc(4096, 1), Buffer.from('2e', 'hex')]);
    expect(() => unpickle(long4)).toThrow(/over the limit/);
  });

  it('never throws anything but PickleError on random bytes', () => {
    let seed = 42;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = 0; i < 2000; i++) {
      const buf = Uint8Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256));
      try {
        unpickle(buf);
      } catch (err) {
        expect(err).toBeInstanceOf(PickleError);
      }
    }
  });

  it('builds tuples as PyTuple', () => {
    expect(unpickle(hex('80024b014b02862e')).value).toEqual(new PyTuple([1, 2]));
  });
});
