// A mistake in how the CLI was called (a bad flag value, an unreadable job file): exit code 2,
// where errors from the server or a failed job are exit code 1.
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
