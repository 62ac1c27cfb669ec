// Tenant scoping of jobs. A principal sees, cancels, retries, watches and reads the logs of its
// own tenants' jobs only; another tenant's job answers NOT_FOUND with the very message a
// missing job gets, so a user cannot learn which job ids exist elsewhere. A job's env is
// shown only to its own tenant's principals and to admins (values replaced otherwise).
import type { Job, JobEvent } from '@gantry/proto';
import { inTenant, seesSecretsOf, type Principal } from '@gantry/auth';
import { notFound } from '@gantry/service-kit';

export const REDACTED = '<redacted>';

export function jobNotFound(jobId: string): Error {
  return notFound(`job ${jobId} not found`);
}

/** Throws NOT_FOUND unless `p` may see `job`. */
export function assertVisible(job: Job, p: Principal): void {
  if (!inTenant(p, job.spec?.tenant ?? '')) throw jobNotFound(job.id);
}

export function redactJob(job: Job, p: Principal): Job {
  if (!job.spec || seesSecretsOf(p, job.spec.tenant)) return job;
  const env = Object.fromEntries(Object.keys(job.spec.env).map((k) => [k, REDACTED]));
  return { ...job, spec: { ...job.spec, env } };
}

export function redactEvent(event: JobEvent, p: Principal): JobEvent {
  return event.job ? { ...event, job: redactJob(event.job, p) } : event;
}
