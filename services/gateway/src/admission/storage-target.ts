// JobSpec.checkpoint.admit_flushes needs a storage target to take its ranks' leases on: the one
// the job names, else the one whose mount prefix holds its checkpoint directory (the longest
// prefix wins, as the checkpoint service's StorageService picks it). A job whose flushes would
// find no target is refused at submit, not left to log "no storage target" on every flush.
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import type { CheckpointSpec, ListStorageTargetsResponse, StorageServiceClient, StorageTarget } from '@gantry/proto';
import { invalidArgument, unavailable } from '@gantry/service-kit';

/** Checks a submission's checkpoint spec; resolves when its flushes have a target. */
export type StorageTargetCheck = (c: CheckpointSpec) => Promise<void>;

/** The target the service would pick for `dir` among `targets`, if any. */
export function targetForDir(targets: readonly Pick<StorageTarget, 'name' | 'mountPrefix'>[], dir: string): string | undefined {
  let best: Pick<StorageTarget, 'name' | 'mountPrefix'> | undefined;
  for (const t of targets) {
    const p = t.mountPrefix.replace(/\/$/, '');
    if ((dir === t.mountPrefix || dir.startsWith(p + '/')) && (!best || t.mountPrefix.length > best.mountPrefix.length)) best = t;
  }
  return best?.name;
}

/** The reason no target resolves for `c`, or undefined when one does. */
export function unresolvedTarget(targets: readonly Pick<StorageTarget, 'name' | 'mountPrefix'>[], c: CheckpointSpec): string | undefined {
  const names = targets.map((t) => t.name).join(', ') || 'none';
  if (c.storageTarget) {
    return targets.some((t) => t.name === c.storageTarget) ? undefined : `spec.checkpoint.admit_flushes needs a configured storage target: spec.checkpoint.storage_target ${JSON.stringify(c.storageTarget)} is not one (configured: ${names})`;
  }
  if (targetForDir(targets, c.dir)) return undefined;
  const prefixes = targets.map((t) => t.mountPrefix).join(', ') || 'none';
  return `spec.checkpoint.admit_flushes needs a storage target: no configured target's mount prefix (${prefixes}) holds spec.checkpoint.dir ${JSON.stringify(c.dir)}; name one in spec.checkpoint.storage_target`;
}

/**
 * Asks the checkpoint service's StorageService for its targets. UNAVAILABLE when it cannot be
 * asked: the opt-in cannot be checked, and the caller may retry.
 */
export function storageTargetCheck(client: StorageServiceClient, address: string): StorageTargetCheck {
  return async (c) => {
    const res = await new Promise<ListStorageTargetsResponse>((resolve, reject) => {
      client.listStorageTargets({}, new Metadata(), { deadline: Date.now() + 5_000 }, (err: ServiceError | null, r?: ListStorageTargetsResponse) => {
        if (err) {
          reject(unavailable(`spec.checkpoint.admit_flushes: the checkpoint service at ${address} could not be asked for its storage targets (${err.details || err.message}); try again`));
        } else resolve(r!);
      });
    });
    const why = unresolvedTarget(res.targets, c);
    if (why) throw invalidArgument(why);
  };
}
