import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { lastExceptionLine, MAX_ERROR_CHARS, oneLine, parseErrorFile, rankError } from '../../src/runner/rank-error.js';

// Shapes as torch's ErrorHandler writes them (record_exception: json.dump of this dict).
const nested = (message: unknown, timestamp: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ message: { message, extraInfo: { py_callstack: 'Traceback (most recent call last):\n  File "train.py", line 3\nValueError: bad batch\n', timestamp }, ...extra } });

describe('torchelastic error file', () => {
  it('reads the nested form: message and the timestamp (seconds, as a string)', () => {
    expect(parseErrorFile(nested('ValueError: bad batch', '1733090000'))).toEqual({ message: 'ValueError: bad batch', time: new Date(1733090000_000) });
  });

  it('reads the form torchrun writes when it copies a child\'s file (errorCode added)', () => {
    expect(parseErrorFile(nested('RuntimeError: NCCL timeout', '1733090001', { errorCode: 1 }))).toEqual({ message: 'RuntimeError: NCCL timeout', time: new Date(1733090001_000) });
  });

  it('reads the plain-string form with a top-level timestamp', () => {
    expect(parseErrorFile(JSON.stringify({ message: 'Signal 11 (SIGSEGV) received by PID 42', timestamp: 1733090002 }))).toEqual({ message: 'Signal 11 (SIGSEGV) received by PID 42', time: new Date(1733090002_000) });
    expect(parseErrorFile(JSON.stringify({ message: 'no time here' }))).toEqual({ message: 'no time here' });
  });

  it('describes a copied child that left no message by its error code', () => {
    expect(parseErrorFile(JSON.stringify({ message: { extraInfo: { timestamp: '1733090003' }, errorCode: -11 } }))?.message).toBe('worker killed by signal SIGSEGV');
    expect(parseErrorFile(JSON.stringify({ message: { message: '', errorCode: 3 } }))?.message).toBe('worker exited with code 3');
  });

  it('says nothing for the placeholder, other JSON, or not JSON', () => {
    expect(parseErrorFile(JSON.stringify({ message: '<NONE>' }))).toBeUndefined();
    expect(parseErrorFile(JSON.stringify({ message: 42 }))).toBeUndefined();
    expect(parseErrorFile('[1,2]')).toBeUndefined();
    expect(parseErrorFile('')).toBeUndefined();
    expect(parseErrorFile('not json')).toBeUndefined();
  });

  it('ignores timestamps that are not epoch seconds', () => {
    expect(parseErrorFile(nested('E: x', 'yesterday'))).toEqual({ message: 'E: x' });
    expect(parseErrorFile(nested('E: x', '1733090000000'))).toEqual({ message: 'E: x' }); // milliseconds
    expect(parseErrorFile(nested('E: x', -5))).toEqual({ message: 'E: x' });
  });

  it('keeps the message of a file cut short by the read bound (a long traceback after it)', () => {
    const full = nested('ValueError: bad "batch"\nsecond line', '1733090000');
    expect(parseErrorFile(full.slice(0, full.indexOf('py_callstack') + 30))).toEqual({ message: 'ValueError: bad "batch" second line' });
  });

  it('makes the message one bounded line', () => {
    const m = parseErrorFile(nested(`RuntimeError: CUDA error\n\tan illegal memory access ${'x'.repeat(2000)}`, '1733090000'))!.message;
    expect(m.startsWith('RuntimeError: CUDA error an illegal memory access xxx')).toBe(true);
    expect(m.length).toBe(MAX_ERROR_CHARS);
    expect(m).not.toMatch(/[\n\t]/);
    expect(m.endsWith('…')).toBe(true);
  });
});

describe('exception line in stderr', () => {
  it('finds the last exception line of a Python traceback', () => {
    const tail = [
      'epoch 3 step 100 loss 2.1',
      'Traceback (most recent call last):',
      '  File "/app/train.py", line 42, in <module>',
      '    raise ValueError("bad batch")',
      'ValueError: bad batch',
      'some teardown output',
    ].join('\n');
    expect(lastExceptionLine(tail)).toBe('ValueError: bad batch');
  });

  it('takes dotted class names, bare names, and strips launcher prefixes and colours', () => {
    expect(lastExceptionLine('[rank1]: torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970\n')).toBe('torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970');
    expect(lastExceptionLine('[default0]:[rank0]: RuntimeError: boom\r\n')).toBe('RuntimeError: boom');
    expect(lastExceptionLine('\u001b[31mKeyboardInterrupt\u001b[0m\n')).toBe('KeyboardInterrupt');
    expect(lastExceptionLine('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n')).toBe('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB');
    expect(lastExceptionLine('Fatal Python error: Segmentation fault\n\nThread 0x01 (most recent call first):\n')).toBe('Fatal Python error: Segmentation fault');
  });

  it('prefers a worker\'s exception to torchrun\'s ChildFailedError summary', () => {
    const tail = [
      '[rank0]: ValueError: bad batch',
      'E0101 12:00:00.000000 123 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 1) local_rank: 0 (pid: 7) of binary: python',
      'Traceback (most recent call last):',
      'torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ',
      '============================================================',
      'train.py FAILED',
    ].join('\n');
    expect(lastExceptionLine(tail)).toBe('ValueError: bad batch');
    expect(lastExceptionLine('torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n===\n')).toBe('torch.distributed.elastic.multiprocessing.errors.ChildFailedError:');
  });

  it('ignores lines that only mention errors', () => {
    const tail = [
      'ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1)',
      'Errors were found in 3 files',
      'Exception in thread Thread-1:',
      'UserWarning: this is deprecated',
      'loss=nan Error rate 3%',
    ].join('\n');
    expect(lastExceptionLine(tail)).toBeUndefined();
  });

  it('skips the cut first line of a tail read from mid-file', () => {
    expect(lastExceptionLine('ValueError: only half of this line\nnothing here\n', true)).toBeUndefined();
    expect(lastExceptionLine('ValueError: a whole line\nnothing here\n', false)).toBe('ValueError: a whole line');
  });
});

describe('rank error', () => {
  const exitedAt = new Date('2026-01-01T00:00:00Z');

  it('prefers the error file, dated by it, then the stderr line dated by the exit', () => {
    expect(rankError({ errorFile: nested('ValueError: a', '1733090000'), stderrTail: 'RuntimeError: b\n', exitedAt })).toEqual({ message: 'ValueError: a', time: new Date(1733090000_000) });
    expect(rankError({ errorFile: JSON.stringify({ message: 'undated' }), exitedAt })).toEqual({ message: 'undated', time: exitedAt });
    expect(rankError({ errorFile: '{"message": 1}', stderrTail: 'RuntimeError: b\n', exitedAt })).toEqual({ message: 'RuntimeError: b', time: exitedAt });
    expect(rankError({ stderrTail: 'all fine\n', exitedAt })).toBeUndefined();
    expect(rankError({ exitedAt })).toBeUndefined();
  });

  it('never throws on arbitrary bytes, and what it returns is one bounded line', () => {
    const bytes = fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b).toString('utf8'));
    const jsonish = fc.oneof(
      bytes,
      fc.json(),
      fc.jsonValue().map((message) => JSON.stringify({ message, timestamp: 1733090000 })),
      fc.tuple(fc.jsonValue(), fc.jsonValue(), fc.jsonValue()).map(([m, ts, code]) => JSON.stringify({ message: { message: m, extraInfo: { timestamp: ts }, errorCode: code } })),
    );
    const lines = fc.array(fc.oneof(fc.string(), fc.constantFrom('ValueError: x', '[rank0]: RuntimeError: y', 'ChildFailedError:', '\u001b[0m')), { maxLength: 50 }).map((l) => l.join('\n'));
    fc.assert(fc.property(fc.option(jsonish, { nil: undefined }), fc.option(fc.oneof(bytes, lines), { nil: undefined }), fc.boolean(), (errorFile, stderrTail, partial) => {
      const r = rankError({ errorFile, stderrTail, stderrTailPartial: partial, exitedAt });
      if (r === undefined) return;
      expect(r.message.length).toBeGreaterThan(0);
      expect(r.message.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
      expect(r.message).not.toMatch(/[\n\r\t]/);
      expect(Number.isNaN(r.time!.getTime())).toBe(false);
    }), { numRuns: 2000 });
  });

  it('bounds a line without splitting a surrogate pair', () => {
    const s = oneLine(`${'a'.repeat(MAX_ERROR_CHARS - 2)}😀😀😀`);
    expect(s.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
    expect(s).toBe(`${'a'.repeat(MAX_ERROR_CHARS - 2)}…`);
  });
});
