// The gateway names the proto fields of a request it refuses (`spec.gpus_per_node must be
// between 0 and 32, got 40`); someone at a terminal typed `--gpus-per-node`. These rewrite the
// field names in the server's message into the flags (the job file uses the same names in
// camelCase, see docs/cli.md), leaving the rule and the value as the server said them.

/** Proto field path -> what the user gave, longest first where one is a prefix of another. */
const FIELDS: [RegExp, string][] = [
  [/\bspec\.retry\.max_recoveries\b/g, '--max-recoveries'],
  [/\bspec\.retry\.retry_on(\[\d+\])?/g, '--retry-on'],
  [/\bspec\.retry\.backoff_initial_ms\b/g, '--backoff (ms)'],
  [/\bspec\.retry\.backoff_max_ms\b/g, '--backoff-max (ms)'],
  [/\bspec\.retry\.backoff_jitter\b/g, 'retry.backoffJitter'],
  [/\bspec\.checkpoint\.dir\b/g, '--checkpoint-dir'],
  [/\bspec\.checkpoint\.format\b/g, '--checkpoint-format'],
  [/\bspec\.checkpoint\.storage_target\b/g, '--checkpoint-storage'],
  [/\bspec\.checkpoint\.admit_flushes\b/g, '--checkpoint-admit-flushes'],
  [/\bspec\.checkpoint\.retention\.keep_last\b/g, '--checkpoint-keep-last'],
  [/\bspec\.checkpoint\.retention\.keep_every\b/g, '--checkpoint-keep-every'],
  [/\bspec\.checkpoint\.retention\.gc_grace_seconds\b/g, '--checkpoint-gc-grace (seconds)'],
  [/\bspec\.gpus_per_node\b/g, '--gpus-per-node'],
  [/\bspec\.gpu_types(\[\d+\])?/g, '--gpu-type'],
  [/\bspec\.nodes\b/g, '--nodes'],
  [/\bspec\.name\b/g, '--name'],
  [/\bspec\.tenant\b/g, '--tenant'],
  [/\bspec\.command\[(\d+)\]/g, 'argument $1 of the command (after --)'],
  [/\bspec\.command\b/g, 'the command (after --)'],
  [/\bspec\.env key\b/g, '--env name'],
  [/\bspec\.env\.([A-Za-z_][A-Za-z0-9_]*)/g, '--env $1'],
  [/\bspec\.env\b/g, '--env'],
  [/\bspec\.working_dir\b/g, '--workdir'],
  [/\bspec\.run_as_user\b/g, '--run-as'],
  [/\bspec\.priority_class\b/g, '--priority'],
  [/\bspec\.time_limit_seconds\b/g, '--time-limit (seconds)'],
  [/\bspec\.topology\b/g, '--topology'],
  [/\bspec\.launcher\b/g, '--launcher'],
  [/\bspec\.node_selector key\b/g, '--selector key'],
  [/\bspec\.node_selector\.([^ ]+) value\b/g, '--selector $1 value'],
  [/\bspec\.node_selector\b/g, '--selector'],
  [/\bspec\.exclude_nodes(\[\d+\])?/g, '--exclude-node'],
  [/\bspec\.master_port\b/g, '--master-port'],
  [/\bspec\.stop_grace_seconds\b/g, '--stop-grace (seconds)'],
  [/\bidempotency_key\b/g, '--idempotency-key'],
  [/^spec must encode\b/, 'the job (command, env and selectors together) must encode'],
];

/** The server's INVALID_ARGUMENT details for a submit, in terms of the submit flags. */
export function submitProblemsAsFlags(details: string): string {
  return details.split('; ').map((problem) => FIELDS.reduce((text, [field, flag]) => text.replace(field, flag), problem)).join('; ');
}
