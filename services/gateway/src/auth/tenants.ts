// Which tenants exist: the keys of `tenants` in the scheduling policy, read from the scheduler
// and cached briefly (a policy change is seen within TTL_MS).
import type { AdminServiceClient } from '@gantry/proto';
import { call } from '../scheduler-client.js';

const TTL_MS = 5_000;

export class TenantDirectory {
  private cached: { at: number; tenants: Set<string> } | undefined;
  private inflight: Promise<Set<string>> | undefined;

  constructor(private readonly admin: AdminServiceClient) {}

  async known(tenant: string): Promise<boolean> {
    return (await this.tenants()).has(tenant);
  }

  async tenants(): Promise<Set<string>> {
    if (this.cached && Date.now() - this.cached.at < TTL_MS) return this.cached.tenants;
    this.inflight ??= call(this.admin, this.admin.getSchedulingConfig, {}).then((res) => {
      const doc = JSON.parse(res.configJson) as { tenants?: Record<string, unknown> };
      const tenants = new Set(Object.keys(doc.tenants ?? {}));
      this.cached = { at: Date.now(), tenants };
      return tenants;
    }).finally(() => { this.inflight = undefined; });
    return this.inflight;
  }
}
