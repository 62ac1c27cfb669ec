// Turns a call's credentials into a Principal: a bearer token in `authorization` metadata
// (when GATEWAY_AUTH includes token), else the verified client certificate (when it includes
// mtls). Every failure is UNAUTHENTICATED with the reason.
import type { PeerCertificate } from 'node:tls';
import type { Metadata } from '@grpc/grpc-js';
import { unauthenticated } from './errors.js';
import { loadTokenKeys, TokenVerifier } from './jwt.js';
import { principalFromCertificate } from './mtls.js';
import { EMPTY_POLICY, loadAuthPolicy, type AuthPolicy } from './policy.js';
import { ANONYMOUS_ADMIN, type Principal } from './principal.js';
import type { AuthSettings } from './settings.js';

export class Authenticator {
  private constructor(readonly settings: AuthSettings, readonly policy: AuthPolicy, private readonly tokens: TokenVerifier | undefined) {}

  /** Loads keys and the policy file; throws AuthConfigError naming the variable at fault. */
  static async create(settings: AuthSettings): Promise<Authenticator> {
    const policy = settings.policyFile ? loadAuthPolicy(settings.policyFile) : EMPTY_POLICY;
    const tokens = settings.jwt ? new TokenVerifier(await loadTokenKeys(settings.jwt.keysFile), settings.jwt) : undefined;
    return new Authenticator(settings, policy, tokens);
  }

  get enabled(): boolean {
    return this.settings.modes.length > 0;
  }

  async authenticate(metadata: Metadata, peerCertificate: PeerCertificate | undefined): Promise<Principal> {
    if (!this.enabled) return ANONYMOUS_ADMIN;
    const auth = metadata.get('authorization');
    if (auth.length > 0 && this.tokens) {
      if (auth.length > 1) throw unauthenticated('more than one authorization header');
      const value = String(auth[0]);
      const m = /^Bearer +(\S+)$/i.exec(value);
      if (!m) throw unauthenticated('authorization must be "Bearer <token>"');
      return this.tokens.verify(m[1]!);
    }
    if (this.settings.modes.includes('mtls')) return principalFromCertificate(peerCertificate, this.policy);
    throw unauthenticated('missing credentials: send "authorization: Bearer <token>" (gantry --token, GANTRY_TOKEN or ~/.config/gantry/config.yaml)');
  }
}
