// Bearer tokens: JWTs verified with `jose` against configured keys (a JWKS document, e.g. an
// OIDC issuer's /jwks.json saved to a file, or PEM public keys), with the issuer, audience,
// expiry and not-before checked. Claims give the subject, roles and tenants.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors, importSPKI, jwtVerify, decodeProtectedHeader, type CryptoKey, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AuthConfigError, unauthenticated } from './errors.js';
import { isRole, type Principal } from './principal.js';

/** Asymmetric algorithms only: a shared secret would let every verifier mint tokens. */
export const TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

export interface TokenSettings {
  /** JWKS JSON, or one or more PEM public keys (SPKI). */
  keysFile: string;
  issuer: string;
  audience: string;
  rolesClaim: string;
  tenantsClaim: string;
  /** Allowed clock skew, seconds. */
  clockToleranceSec: number;
}

/** Reads the keys once at start; throws AuthConfigError naming `variable` when the file is unusable. */
export async function loadTokenKeys(file: string, variable = 'GATEWAY_JWT_KEYS_FILE'): Promise<JWTVerifyGetKey> {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (err) { throw new AuthConfigError(variable, `cannot read ${file}: ${(err as Error).message}`); }
  if (text.trimStart().startsWith('{')) {
    let jwks: JSONWebKeySet;
    try { jwks = JSON.parse(text) as JSONWebKeySet; } catch (err) { throw new AuthConfigError(variable, `${file} is not JSON: ${(err as Error).message}`); }
    if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new AuthConfigError(variable, `${file} must be a JWKS document with a non-empty "keys" array`);
    if (jwks.keys.some((k) => k.kty === 'oct')) throw new AuthConfigError(variable, `${file} holds a symmetric (oct) key; use public keys only`);
    try { return createLocalJWKSet(jwks); } catch (err) { throw new AuthConfigError(variable, `${file}: ${(err as Error).message}`); }
  }
  const pems = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  if (pems.length === 0) throw new AuthConfigError(variable, `${file} must be a JWKS document or PEM public keys (-----BEGIN PUBLIC KEY-----)`);
  // A PEM key does not say its algorithm; import it for each one it can serve.
  const keys: { alg: string; key: CryptoKey }[] = [];
  for (const pem of pems) {
    for (const alg of TOKEN_ALGORITHMS) {
      try { keys.push({ alg, key: await importSPKI(pem, alg) }); } catch { /* not this algorithm */ }
    }
  }
  if (keys.length === 0) throw new AuthConfigError(variable, `${file}: no usable public key (RSA, EC P-256/384/521 or Ed25519)`);
  return async (header) => {
    const match = keys.filter((k) => k.alg === header.alg);
    if (match.length === 0) throw new errors.JWKSNoMatchingKey();
    if (match.length === 1) return match[0]!.key;
    // Several keys of one algorithm: jose tries each (a multiple-match error carries an iterator).
    const err = new errors.JWKSMultipleMatchingKeys() as errors.JWKSMultipleMatchingKeys & { [Symbol.asyncIterator]?: () => AsyncIterator<CryptoKey> };
    err[Symbol.asyncIterator] = async function* () { for (const k of match) yield k.key; };
    throw err;
  };
}

function stringList(v: unknown): string[] | undefined {
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  return undefined;
}

/** Verifies tokens; every refusal is UNAUTHENTICATED with the reason. */
export class TokenVerifier {
  constructor(private readonly keys: JWTVerifyGetKey, private readonly settings: TokenSettings) {}

  async verify(token: string): Promise<Principal> {
    if (token.length > 16 * 1024) throw unauthenticated('bearer token is longer than 16 KiB');
    let payload: JWTPayload;
    try {
      decodeProtectedHeader(token);
    } catch {
      throw unauthenticated('bearer token is not a JWT (expected header.payload.signature)');
    }
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: [...TOKEN_ALGORITHMS],
        clockTolerance: this.settings.clockToleranceSec,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      throw unauthenticated(tokenProblem(err, this.settings));
    }
    const roles = stringList(payload[this.settings.rolesClaim]) ?? [];
    const bad = roles.filter((r) => !isRole(r));
    if (bad.length > 0) throw unauthenticated(`bearer token claim "${this.settings.rolesClaim}" has unknown roles ${JSON.stringify(bad.slice(0, 5))} (known: admin, operator, user)`);
    const tenants = stringList(payload[this.settings.tenantsClaim]) ?? [];
    return {
      subject: payload.sub!,
      roles: roles as Principal['roles'],
      tenants,
      method: 'token',
      ...(payload.exp ? { expiresAt: new Date(payload.exp * 1000) } : {}),
    };
  }
}

/** The precise reason a token was refused. */
export function tokenProblem(err: unknown, s: Pick<TokenSettings, 'issuer' | 'audience'>): string {
  if (err instanceof errors.JWTExpired) return `bearer token expired at ${new Date(Number(err.payload.exp) * 1000).toISOString()}`;
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return `bearer token has the wrong audience (want "${s.audience}")`;
    if (err.claim === 'iss') return `bearer token has the wrong issuer (want "${s.issuer}")`;
    if (err.claim === 'nbf') return 'bearer token is not valid yet (nbf is in the future)';
    if (err.reason === 'missing') return `bearer token lacks the "${err.claim}" claim`;
    return `bearer token claim "${err.claim}" is invalid: ${err.message}`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bearer token has a bad signature';
  if (err instanceof errors.JWKSNoMatchingKey) return 'bearer token is signed with a key the gateway does not know (kid/alg)';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'bearer token uses an algorithm that is not allowed (asymmetric signatures only)';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return `bearer token is malformed: ${(err as Error).message}`;
  if (err instanceof errors.JOSEError) return `bearer token refused: ${err.message}`;
  return 'bearer token could not be verified';
}
