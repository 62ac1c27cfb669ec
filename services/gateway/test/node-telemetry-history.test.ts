// The gateway refuses a telemetry history beyond what the store keeps, in the scheduler's words,
// so a client sees the same bound whichever of the two answers.
import { describe, expect, it } from 'vitest';
import { TELEMETRY_HISTORY_CAP } from '@gantry/store';
import { message } from './spec-fixtures.js';
import { admitTelemetryHistory } from '../src/admission/shared.js';

describe('GetNodeTelemetry history at the gateway', () => {
  it('admits 0 up to the batches kept per node', () => {
    expect(() => admitTelemetryHistory(0)).not.toThrow();
    expect(() => admitTelemetryHistory(TELEMETRY_HISTORY_CAP)).not.toThrow();
  });

  it('refuses one more with the bound named', () => {
    expect(TELEMETRY_HISTORY_CAP).toBe(64);
    expect(message(() => admitTelemetryHistory(65))).toBe('history must be between 0 and 64 (the batches kept per node), got 65');
    expect(message(() => admitTelemetryHistory(360))).toBe('history must be between 0 and 64 (the batches kept per node), got 360');
  });
});
