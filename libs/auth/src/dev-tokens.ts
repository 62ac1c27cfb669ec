// Minting tokens: for tests, and for a small in-house issuer (`gantry-token` in docs/security.md).
// Production deployments normally take tokens from their OIDC provider instead.
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import type { Role } from './principal.js';

export interface SigningKey {
  privateKey: CryptoKey;
  /** The JWKS document the gateway verifies with (GATEWAY_JWT_KEYS_FILE). */
  jwks: { keys: object[] };
  kid: string;
  alg: 'ES256';
}

export async function generateSigningKey(kid = 'gantry-dev'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { privateKey, jwks: { keys: [jwk] }, kid, alg: 'ES256' };
}

export interface TokenClaims {
  subject: string;
  roles: Role[];
  tenants?: string[];
  issuer: string;
  audience?: string;
  /** Lifetime, seconds (default an hour); negative for an expired token. */
  ttlSec?: number;
}

export async function signToken(key: Pick<SigningKey, 'privateKey' | 'kid' | 'alg'>, c: TokenClaims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ roles: c.roles, tenants: c.tenants ?? [] })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setSubject(c.subject)
    .setIssuer(c.issuer)
    .setAudience(c.audience ?? 'gantry')
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (c.ttlSec ?? 3600))
    .sign(key.privateKey);
}
