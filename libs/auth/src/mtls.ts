// Mutual TLS: the identity is taken from the verified client certificate's subjectAltName
// (URI first, e.g. a SPIFFE id, then email, then DNS); roles and tenants come from the auth
// policy file, keyed by that identity. The TLS layer has already checked the chain against
// TLS_CLIENT_CA_FILE; this only reads the name.
import type { PeerCertificate } from 'node:tls';
import { unauthenticated } from './errors.js';
import type { AuthPolicy } from './policy.js';
import type { Principal } from './principal.js';

/** The SAN entries of a certificate, by kind. */
export function subjectAltNames(cert: Pick<PeerCertificate, 'subjectaltname'>): { uri: string[]; email: string[]; dns: string[] } {
  const out = { uri: [] as string[], email: [] as string[], dns: [] as string[] };
  for (const part of (cert.subjectaltname ?? '').split(/,\s*/)) {
    const i = part.indexOf(':');
    if (i < 0) continue;
    const kind = part.slice(0, i);
    const value = part.slice(i + 1).replace(/^"|"$/g, '');
    if (kind === 'URI') out.uri.push(value);
    else if (kind === 'email') out.email.push(value);
    else if (kind === 'DNS') out.dns.push(value);
  }
  return out;
}

/** The identity a certificate stands for, or undefined when it has no usable SAN. */
export function certificateIdentity(cert: Pick<PeerCertificate, 'subjectaltname'>): string | undefined {
  const san = subjectAltNames(cert);
  return san.uri[0] ?? san.email[0] ?? san.dns[0];
}

export function principalFromCertificate(cert: PeerCertificate | undefined, policy: AuthPolicy): Principal {
  if (!cert || Object.keys(cert).length === 0) throw unauthenticated('no client certificate: this gateway authenticates clients by mutual TLS (or a bearer token)');
  const identity = certificateIdentity(cert);
  if (!identity) throw unauthenticated('client certificate has no subjectAltName (URI, email or DNS) to identify it');
  const grant = policy.principals.get(identity);
  return { subject: identity, roles: grant?.roles ?? [], tenants: grant?.tenants ?? [], method: 'mtls' };
}
