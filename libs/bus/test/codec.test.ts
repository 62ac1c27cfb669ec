// encode() reuses one writer: every message still encodes to exactly its own bytes, after a
// larger one, after a huge one (the writer is then replaced) and after an encode that failed
// half-way (which would otherwise leave its bytes in the writer).
import { describe, expect, it } from 'vitest';
import { AgentCommandReply, RankAssignment } from '@gantry/proto';
import { decode, encode } from '../src/codec.js';

const fresh = (a: RankAssignment) => RankAssignment.encode(a).finish();
const assignment = (jobId: string, envBytes = 0) => RankAssignment.create({ jobId, attempt: 2, rank: 1, command: ['python', 'train.py'], env: envBytes ? { BIG: 'x'.repeat(envBytes) } : { A: '1' }, gpuIndices: [0, 1] });

describe('encode', () => {
  it('gives each message its own bytes whatever the shared writer encoded before', () => {
    const small = assignment('j-small');
    const large = assignment('j-large', 3_000);
    const huge = assignment('j-huge', 200_000);
    for (const m of [small, large, small, huge, small, large]) {
      const bytes = encode(RankAssignment, m);
      expect(Buffer.from(bytes)).toEqual(Buffer.from(fresh(m)));
      expect(decode(RankAssignment, bytes, 'RankAssignment')).toEqual(m);
    }
    // The bytes handed out are the caller's: a later encode does not overwrite them.
    const first = encode(RankAssignment, small);
    const copy = Buffer.from(first);
    encode(RankAssignment, large);
    expect(Buffer.from(first)).toEqual(copy);
  });

  it('starts clean after an encode that threw half-way', () => {
    // A negative uint32 is refused by the writer after the fields before it were written.
    expect(() => encode(RankAssignment, { ...assignment('j-bad'), stopGraceSeconds: -1 })).toThrow();
    const ok = AgentCommandReply.create({ ok: true, message: 'fine' });
    expect(Buffer.from(encode(AgentCommandReply, ok))).toEqual(Buffer.from(AgentCommandReply.encode(ok).finish()));
  });
});
