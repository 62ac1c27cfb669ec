import { describe, expect, it } from 'vitest';
import { Metadata } from '@grpc/grpc-js';
import { GantryError, status, statusName, toGantryError } from '../src/index.js';

describe('GantryError', () => {
  it('carries the code, its name and the details', () => {
    const err = new GantryError(status.NOT_FOUND, 'job j-1 not found');
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('GantryError');
    expect(err.code).toBe(5);
    expect(err.codeName).toBe('NOT_FOUND');
    expect(err.details).toBe('job j-1 not found');
    expect(err.message).toBe('NOT_FOUND: job j-1 not found');
  });

  it('is() checks the class and optionally the code', () => {
    const err = new GantryError(status.UNAVAILABLE, 'x');
    expect(GantryError.is(err)).toBe(true);
    expect(GantryError.is(err, status.NOT_FOUND, status.UNAVAILABLE)).toBe(true);
    expect(GantryError.is(err, status.NOT_FOUND)).toBe(false);
    expect(GantryError.is(new Error('x'))).toBe(false);
  });

  it('names unknown codes', () => {
    expect(statusName(99)).toBe('STATUS_99');
  });
});

describe('toGantryError', () => {
  it('keeps a grpc-js ServiceError status, metadata and cause', () => {
    const md = new Metadata();
    md.set('k', 'v');
    const raw = Object.assign(new Error('5 NOT_FOUND: gone'), { code: status.NOT_FOUND, details: 'gone', metadata: md });
    const err = toGantryError(raw);
    expect(err).toMatchObject({ code: status.NOT_FOUND, details: 'gone', cause: raw });
    expect(err.metadata.get('k')).toEqual(['v']);
  });

  it('turns an abort into CANCELLED and anything else into UNKNOWN', () => {
    const ac = new AbortController();
    ac.abort();
    let abort: unknown;
    try {
      ac.signal.throwIfAborted();
    } catch (e) {
      abort = e;
    }
    expect(toGantryError(abort).code).toBe(status.CANCELLED);
    expect(toGantryError(new TypeError('boom'))).toMatchObject({ code: status.UNKNOWN, details: 'boom' });
    expect(toGantryError('str').details).toBe('str');
  });

  it('returns a GantryError unchanged', () => {
    const err = new GantryError(status.INTERNAL, 'x');
    expect(toGantryError(err)).toBe(err);
  });
});
