// @gantry/auth: who is calling (principals from bearer JWTs or client certificates), what each
// gRPC method needs (one table), tenants, rate limits, strict request decoding, and bounded
// quoting of input in errors. Used by the gateway; see docs/security.md.
export * from './principal.js';
export * from './roles.js';
export * from './errors.js';
export * from './jwt.js';
export * from './mtls.js';
export * from './policy.js';
export * from './settings.js';
export * from './authenticator.js';
export * from './rate-limit.js';
export * from './wire.js';
export * from './text.js';
export * from './dev-tokens.js';
