import { describe, expect, it } from 'vitest';
import { parseReplication } from '../../src/api/cluster-status.js';

// INFO replication as redis-server 7 prints it (CRLF line ends).
const PRIMARY = [
  '# Replication', 'role:master', 'connected_slaves:2',
  'slave0:ip=127.0.0.1,port=16380,state=online,offset=9876,lag=0',
  'slave1:ip=127.0.0.1,port=16381,state=wait_bgsave,offset=0,lag=3',
  'master_failover_state:no-failover', 'master_replid:8f1d0d7e', 'master_repl_offset:10000', '',
].join('\r\n');

describe('parseReplication', () => {
  it('reads the role and each replica with how far behind it is', () => {
    expect(parseReplication(PRIMARY)).toMatchObject({
      role: 'master',
      replicas: [
        { address: '127.0.0.1:16380', state: 'online', offsetLagBytes: 124, lagSeconds: 0 },
        { address: '127.0.0.1:16381', state: 'wait_bgsave', offsetLagBytes: 10000, lagSeconds: 3 },
      ],
    });
    expect(parseReplication('# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n')).toMatchObject({ role: 'replica', replicas: [] });
  });
});
