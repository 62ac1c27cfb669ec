// The agent's route to storage admission is configured and checked at start: the checkpoint
// service's address (GANTRY_CHECKPOINT_ADDR / checkpointAddr) and the internal TLS files.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadAgentConfig } from '../../src/config.js';
import { StorageRoute } from '../../src/checkpoints/storage-route.js';
import { schedulerKeyEnv } from '../helpers/command-keys.js';

const env = () => ({ GANTRY_AGENT_CONFIG: '/dev/null', GANTRY_NODE_NAME: 'n0', GANTRY_STATE_DIR: '/tmp/x', ...schedulerKeyEnv() });

describe('agent storage admission settings', () => {
  it('GANTRY_CHECKPOINT_ADDR is optional and must be host:port', () => {
    expect(loadAgentConfig(env()).checkpointAddr).toBeUndefined();
    expect(loadAgentConfig({ ...env(), GANTRY_CHECKPOINT_ADDR: 'checkpoint.cluster:7072' }).checkpointAddr).toBe('checkpoint.cluster:7072');
    expect(() => loadAgentConfig({ ...env(), GANTRY_CHECKPOINT_ADDR: 'http://x' })).toThrow(/GANTRY_CHECKPOINT_ADDR \(checkpointAddr\): must be host:port/);
  });

  it('internal TLS files that cannot be used stop the agent naming the variable', () => {
    expect(() => loadAgentConfig({ ...env(), INTERNAL_TLS_CA_FILE: '/nonexistent/ca.pem' })).toThrow(/INTERNAL_TLS_/);
    expect(() => new StorageRoute('127.0.0.1:1', 'n0', pino({ level: 'silent' }), { caFile: '/nonexistent/ca.pem' })).toThrow(/INTERNAL_TLS_/);
  });
});
