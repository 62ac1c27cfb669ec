// `pnpm bus:keys DIR [NODE ...]`: the bus credentials of a real cluster (docs/security.md):
// an NKEY user seed per service (scheduler, gateway, checkpoint), per agent and for operators,
// the scheduler's command signing key pair, and nats-server's authorisation block
// (DIR/nats-auth.conf, `include` it in nats-server.conf). Existing keys in DIR are kept, so
// running it again with a new node name adds that node's user; reload nats-server afterwards.
import { BusSecurity } from './bus-security.js';

const [dir, ...nodes] = process.argv.slice(2);
if (!dir || dir.startsWith('-')) {
  process.stderr.write('usage: pnpm bus:keys DIR [NODE ...]\n');
  process.exit(2);
}
try {
  const bus = new BusSecurity(dir, nodes);
  process.stdout.write([
    `bus credentials in ${dir}:`,
    `  nats-server:  include ${bus.natsAuthFile} in its configuration, then reload it (nats-server --signal reload)`,
    `  scheduler:    NATS_CREDS_FILE=${bus.seedFile({ kind: 'scheduler' })} COMMAND_SIGNING_KEY_FILE=${bus.commandKeys.privateKeyFile}`,
    `  gateway:      NATS_CREDS_FILE=${bus.seedFile({ kind: 'gateway' })}`,
    `  checkpoint:   NATS_CREDS_FILE=${bus.seedFile({ kind: 'checkpoint' })}`,
    `  each agent:   natsCredsFile: ${dir}/agent-NODE.nk, schedulerPublicKeyFile: ${bus.commandKeys.publicKeyFile}`,
    '',
  ].join('\n'));
} catch (err) {
  process.stderr.write(`bus:keys: ${(err as Error).message}\n`);
  process.exit(1);
}
