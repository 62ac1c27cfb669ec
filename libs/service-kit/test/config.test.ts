import { describe, expect, it } from 'vitest';
import { ConfigError, env, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('applies defaults and coerces numbers', () => {
    expect(loadConfig({ PORT: env.port(7070), TIMEOUT: env.ms(100) }, { TIMEOUT: '250' })).toEqual({ PORT: 7070, TIMEOUT: 250 });
  });

  it('names every bad variable with the value it got', () => {
    try {
      loadConfig({ PORT: env.port(7070), LEVEL: env.logLevel() }, { PORT: '70000', LEVEL: 'loud' });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/PORT: .*\(got "70000"\)/);
      expect((err as Error).message).toMatch(/LEVEL: .*\(got "loud"\)/);
    }
  });
});
