// The authorization server's two discovery documents, judged by the official SDK's own schemas:
// /.well-known/oauth-authorization-server (RFC 8414) and /.well-known/openid-configuration, which
// must carry what OpenID Connect Discovery 1.0 §3 requires (issuer, authorization_endpoint,
// token_endpoint, jwks_uri, response_types_supported, subject_types_supported,
// id_token_signing_alg_values_supported) and claim nothing Gatehouse does not do: it issues no
// ID token and has no userinfo endpoint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OAuthMetadataSchema, OpenIdProviderDiscoveryMetadataSchema } from '@modelcontextprotocol/sdk/shared/auth.js';
import { startAuthGateway } from '../integration/oauth_lib.mjs';

const REQUIRED = ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri', 'response_types_supported', 'subject_types_supported', 'id_token_signing_alg_values_supported'];

async function json(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(10000) });
  assert.equal(res.status, 200, url);
  assert.match(res.headers.get('content-type'), /^application\/(jwk-set\+)?json/);
  return res.json();
}

test('discovery: openid-configuration has the OpenID Connect Discovery fields, truthfully; RFC 8414 metadata stays as it was', { timeout: 60000 }, async (t) => {
  const gw = await startAuthGateway(t, { users: [] });
  const oidc = await json(`${gw.base}/.well-known/openid-configuration`);
  const parsed = OpenIdProviderDiscoveryMetadataSchema.safeParse(oidc);
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  for (const k of REQUIRED) assert.ok(k in oidc, `${k} is missing`);
  assert.equal(oidc.issuer, gw.base);
  assert.equal(oidc.jwks_uri, `${gw.base}/oauth/jwks`);
  assert.deepEqual(oidc.response_types_supported, ['code']);
  // Every client sees a user as the same "sub".
  assert.deepEqual(oidc.subject_types_supported, ['public']);
  // The algorithms are those of the keys actually published.
  const jwks = await json(oidc.jwks_uri);
  assert.deepEqual(oidc.id_token_signing_alg_values_supported, [...new Set(jwks.keys.map((k) => k.alg))]);
  assert.deepEqual(oidc.id_token_signing_alg_values_supported, ['ES256']);
  // Nothing claimed that is not there.
  assert.ok(!('userinfo_endpoint' in oidc));
  assert.ok(!oidc.scopes_supported.includes('openid'), 'openid is offered but no ID token is issued');
  assert.ok(!('claims_supported' in oidc));

  // The RFC 8414 document: the same endpoints, without the OpenID-only fields.
  const meta = await json(`${gw.base}/.well-known/oauth-authorization-server`);
  assert.ok(OAuthMetadataSchema.safeParse(meta).success);
  assert.ok(!('subject_types_supported' in meta) && !('id_token_signing_alg_values_supported' in meta));
  for (const [k, v] of Object.entries(meta)) assert.deepEqual(oidc[k], v, k);
});

test('discovery: a gateway signing with EdDSA says so', { timeout: 60000 }, async (t) => {
  const gw = await startAuthGateway(t, { users: [], auth: { signing_alg: 'EdDSA' } });
  const oidc = await json(`${gw.base}/.well-known/openid-configuration`);
  assert.deepEqual(oidc.id_token_signing_alg_values_supported, ['EdDSA']);
});
