// A cooperative checkpoint writer for test/e2e/storage-admission.test.ts: takes a write lease
// through the SDK (withStorageLease renews it every third of its TTL), prints LEASED and then
// "writes" until it is killed. Usage: storage-admission.writer.ts ADDR TARGET JOB RANK TTL_MS
// [--ca FILE --cert FILE --key FILE] (the stack's internal mTLS client certificate, when on).
import { readFileSync } from 'node:fs';
import { StorageClient } from '@gantry/sdk';

const [address, target, jobId, rank, ttl, ...flags] = process.argv.slice(2);
const flag = (name: string) => {
  const i = flags.indexOf(name);
  return i >= 0 ? readFileSync(flags[i + 1]!) : undefined;
};
const ca = flag('--ca');
const client = new StorageClient({ address: address!, ...(ca && { tls: { ca, cert: flag('--cert')!, key: flag('--key')! } }) });
await client.withStorageLease({ target: target!, mode: 'write', jobId: jobId!, attempt: 1, rank: Number(rank), node: 'writer', ttlMs: Number(ttl) }, async (lease, lost) => {
  process.stdout.write(`LEASED ${lease.id}\n`);
  await new Promise((_, reject) => lost.addEventListener('abort', () => reject(new Error('lease lost'))));
});
