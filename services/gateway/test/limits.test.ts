// Size bounds at the edge: every string, list and map of a request, refused with the field's
// name and a short prefix of the value, before any other rule quotes it.
import { describe, expect, it } from 'vitest';
import { JobSpec } from '@gantry/proto';
import { boundsProblems } from '../src/admission/limits.js';
import { admitSubmit } from '../src/admission/shared.js';

const spec = (over: Partial<JobSpec>) => JobSpec.fromPartial({ nodes: 1, command: ['true'], ...over });

describe('request bounds', () => {
  it('names the field and quotes a prefix only', () => {
    const [p] = boundsProblems({ spec: spec({ name: 'n'.repeat(200_000) }) });
    expect(p).toBe(`spec.name must be at most 128 bytes, got 200000 bytes starting "${'n'.repeat(32)}…" (200000 bytes)`);
  });

  it('bounds map keys and entries, lists, and strings without a named bound', () => {
    expect(boundsProblems({ spec: spec({ env: { ['K'.repeat(300)]: 'v' } }) })[0]).toMatch(/^spec\.env key must be at most 256 bytes, got 300 bytes starting "KKKK/);
    expect(boundsProblems({ spec: spec({ env: Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`K${i}`, 'v'])) }) })[0]).toBe('spec.env must have at most 512 entries, got 600');
    expect(boundsProblems({ spec: spec({ excludeNodes: Array.from({ length: 5000 }, () => 'n') }) })[0]).toBe('spec.exclude_nodes must have at most 4096 items, got 5000');
    expect(boundsProblems({ spec: spec({ command: ['x'.repeat(200 * 1024)] }) })[0]).toMatch(/^spec\.command\[0\] must be at most 131072 bytes/);
    expect(boundsProblems({ configJson: 'x'.repeat(1024 * 1024 + 1) })[0]).toMatch(/^config_json must be at most 1048576 bytes/);
    expect(boundsProblems({ spec: spec({ env: { name: 'x'.repeat(1000) } }) })).toEqual([]); // an env var called "name" is a value, not a name
  });

  it('spells the path of a value inside maps and lists, and counts bytes, not characters', () => {
    expect(boundsProblems({ spec: spec({ env: { HOME: 'x'.repeat(200 * 1024) } }) })[0]).toMatch(/^spec\.env\.HOME must be at most 131072 bytes, got 204800 bytes/);
    expect(boundsProblems({ spec: spec({ nodeSelector: { ['k'.repeat(50)]: 'v'.repeat(200 * 1024) } }) })[0]).toMatch(/^spec\.node_selector\."kkkk/);
    expect(boundsProblems({ spec: spec({ gpuTypes: ['a', 'g'.repeat(129)] }) })[0]).toMatch(/^spec\.gpu_types\[1\] must be at most 128 bytes, got 129 bytes/);
    // 43 three-byte characters are 129 bytes: over the bound of 128 although only 43 characters long.
    expect(boundsProblems({ spec: spec({ name: '€'.repeat(43) }) })[0]).toMatch(/^spec\.name must be at most 128 bytes, got 129 bytes/);
    expect(boundsProblems({ spec: spec({ name: '€'.repeat(42) }) })).toEqual([]);
    expect(boundsProblems({ spec: spec({ env: { ['é'.repeat(129)]: 'v' } }) })[0]).toMatch(/^spec\.env key must be at most 256 bytes, got 258 bytes/);
    expect(boundsProblems({ spec: spec({ env: { ['é'.repeat(128)]: 'v' } }) })).toEqual([]);
  });

  it('bounds run_as_user before its syntax is checked', () => {
    expect(boundsProblems({ spec: spec({ runAsUser: 'u'.repeat(65) }) })[0]).toMatch(/^spec\.run_as_user must be at most 64 bytes, got 65 bytes starting "uuu/);
    expect(boundsProblems({ spec: spec({ runAsUser: 'u'.repeat(64) }) })).toEqual([]);
  });

  it('reports at most five problems', () => {
    expect(boundsProblems({ spec: spec({ gpuTypes: Array.from({ length: 10 }, () => 'g'.repeat(200)) }) })).toHaveLength(5);
  });

  it('admitSubmit runs the bounds before validate.ts, so no message quotes a whole value', () => {
    let message = '';
    try { admitSubmit({ spec: spec({ name: 'bad name\n'.repeat(30_000), tenant: 't'.repeat(100_000) }), idempotencyKey: '' }); } catch (err) { message = (err as Error).message; }
    expect(message.length).toBeLessThan(400);
    expect(message).toContain('spec.name must be at most 128 bytes');
    expect(message).toContain('spec.tenant must be at most 128 bytes');
  });
});
