// CORS for browser-based clients on another origin, with raw requests: an Origin listed in
// allowed_origins gets preflight answers and Access-Control-* headers on /mcp (200, 401, SSE)
// and on the OAuth endpoints a client fetches; an unlisted origin gets a 403 preflight naming it;
// with allowed_origins empty no CORS header is ever sent. (The same from a real browser is in
// tests/interop/cors.test.mjs.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MINI, PROTOCOL, baseConfig, miniServer, openSession, post, request, requireBinary, startGateway } from './lib.mjs';
import { mcpInit, startAuthGateway } from './oauth_lib.mjs';

requireBinary();

const APP = 'https://app.example';
const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'cors', version: '1' } } };
const eraServer = (name) => ({ name, command: process.execPath, args: [MINI, '--label', name, '--era-tools'] });

function preflight(url, origin, method = 'POST', headers = 'content-type, authorization, mcp-session-id, mcp-protocol-version') {
  const h = { Origin: origin, 'Access-Control-Request-Method': method };
  if (headers) h['Access-Control-Request-Headers'] = headers;
  return request(url, { method: 'OPTIONS', headers: h });
}

function noCors(res, what) {
  for (const k of Object.keys(res.headers)) assert.ok(!k.startsWith('access-control-'), `${what}: unexpected ${k}: ${res.headers[k]}`);
}

function corsFor(res, origin, what) {
  assert.equal(res.headers['access-control-allow-origin'], origin, `${what}: ${JSON.stringify(res.headers)}`);
  assert.match(res.headers.vary ?? '', /\bOrigin\b/i, what);
  const exposed = (res.headers['access-control-expose-headers'] ?? '').toLowerCase();
  for (const h of ['mcp-session-id', 'www-authenticate', 'mcp-protocol-version']) assert.ok(exposed.includes(h), `${what}: ${h} not exposed`);
  assert.equal(res.headers['access-control-allow-credentials'], undefined, `${what}: no credentials`);
}

test('default configuration: no CORS header, and a preflight is refused', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [miniServer('a')] }), { t });
  const local = `http://localhost:${gw.port}`; /* an origin on an allowed host passes the rebinding check */
  const init = await post(gw.url, INIT, { version: null, headers: { Origin: local } });
  assert.equal(init.status, 200, init.text);
  noCors(init, 'initialize');
  const pf = await preflight(gw.url, APP);
  assert.equal(pf.status, 403, pf.text);
  noCors(pf, 'preflight');
  const pf2 = await preflight(gw.url, local);
  assert.equal(pf2.status, 403, pf2.text);
  assert.match(pf2.json.error.message, /not in allowed_origins/);
  await gw.stop();
});

test('an allowed origin: preflight, headers on 200 and SSE, refusals name their cause', async (t) => {
  const gw = await startGateway(baseConfig({ allowed_origins: [APP], servers: [eraServer('a')] }), { t });

  for (const url of [gw.url, `${gw.url}/a`]) {
    const pf = await preflight(url, APP, 'POST', 'content-type, authorization, mcp-session-id, mcp-protocol-version, mcp-method, mcp-name, mcp-param-city, last-event-id');
    assert.equal(pf.status, 204, pf.text);
    assert.equal(pf.headers['access-control-allow-origin'], APP);
    assert.equal(pf.headers['access-control-allow-methods'], 'GET, POST, DELETE');
    assert.match(pf.headers['access-control-allow-headers'], /mcp-param-city/);
    assert.match(pf.headers['access-control-allow-headers'], /authorization/);
    assert.equal(pf.headers['access-control-max-age'], '600');
    assert.match(pf.headers.vary, /Origin/);
  }

  const evil = await preflight(gw.url, 'https://evil.example');
  assert.equal(evil.status, 403);
  noCors(evil, 'unlisted preflight');
  assert.match(evil.json.error.message, /Origin "https:\/\/evil\.example" is not in allowed_origins/);
  /* listed with another port or scheme is another origin */
  assert.equal((await preflight(gw.url, 'http://app.example')).status, 403);
  const hdr = await preflight(gw.url, APP, 'POST', 'content-type, x-api-key');
  assert.equal(hdr.status, 403);
  assert.match(hdr.json.error.message, /request header "x-api-key" is not allowed/);
  const put = await preflight(gw.url, APP, 'PUT');
  assert.equal(put.status, 403);
  assert.match(put.json.error.message, /method "PUT" is not allowed here; use GET, POST, DELETE/);

  const init = await post(gw.url, INIT, { version: null, headers: { Origin: APP } });
  assert.equal(init.status, 200, init.text);
  corsFor(init, APP, 'initialize');
  const sid = init.headers['mcp-session-id'];
  assert.ok(sid);
  const note = await post(gw.url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { session: sid, headers: { Origin: APP } });
  assert.equal(note.status, 202);
  corsFor(note, APP, '202');

  const list = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { session: sid, headers: { Origin: APP } });
  const progress = list.json.result.tools.find((x) => x.name.endsWith('progress'));
  assert.ok(progress, list.text);
  const sse = await post(gw.url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: progress.name, arguments: {}, _meta: { progressToken: 'p' } } }, { session: sid, headers: { Origin: APP } });
  assert.equal(sse.status, 200, sse.text);
  assert.match(sse.headers['content-type'], /text\/event-stream/);
  corsFor(sse, APP, 'SSE answer');

  /* an error answer carries them too */
  const bad = await post(gw.url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { session: 'no-such-session', headers: { Origin: APP } });
  assert.ok(bad.status >= 400, bad.text);
  corsFor(bad, APP, 'error');

  /* an origin that passes the rebinding check only by being on an allowed host gets no CORS */
  const local = await post(gw.url, INIT, { version: null, headers: { Origin: `http://localhost:${gw.port}` } });
  assert.equal(local.status, 200);
  assert.equal(local.headers['access-control-allow-origin'], undefined);
  /* nor do the other endpoints */
  const health = await request(`${gw.base}/healthz`, { headers: { Origin: APP } });
  noCors(health, '/healthz');
  await gw.stop();
});

test('OAuth endpoints and the 401 on /mcp carry CORS for an allowed origin', async (t) => {
  const gw = await startAuthGateway(t, { extra: { allowed_origins: [APP] }, workers: 1 });
  const unauth = await mcpInit(gw.url, null, { Origin: APP });
  assert.equal(unauth.status, 401);
  assert.ok(unauth.headers['www-authenticate']);
  corsFor(unauth, APP, '401');

  for (const [path, method] of [
    ['/.well-known/oauth-authorization-server', 'GET'],
    ['/.well-known/openid-configuration', 'GET'],
    ['/.well-known/oauth-protected-resource/mcp', 'GET'],
    ['/oauth/register', 'POST'],
    ['/oauth/token', 'POST'],
    ['/oauth/revoke', 'POST'],
  ]) {
    const pf = await preflight(`${gw.base}${path}`, APP, method, 'content-type, mcp-protocol-version');
    assert.equal(pf.status, 204, `${path}: ${pf.text}`);
    assert.equal(pf.headers['access-control-allow-methods'], method, path);
    assert.equal(pf.headers['access-control-allow-origin'], APP, path);
  }
  assert.equal((await preflight(`${gw.base}/oauth/token`, APP, 'POST', 'mcp-session-id')).status, 403);

  const md = await request(`${gw.base}/.well-known/oauth-authorization-server`, { headers: { Origin: APP } });
  assert.equal(md.status, 200);
  corsFor(md, APP, 'metadata');
  const reg = await request(`${gw.base}/oauth/register`, {
    method: 'POST',
    headers: { Origin: APP, 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_name: 'Browser client', redirect_uris: [`${APP}/cb`], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(reg.status, 201, reg.text);
  corsFor(reg, APP, 'register');
  const tok = await request(`${gw.base}/oauth/token`, { method: 'POST', headers: { Origin: APP, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'grant_type=authorization_code&code=nope' });
  assert.ok(tok.status >= 400, tok.text);
  corsFor(tok, APP, 'token error');

  /* the authorization pages are navigations: no CORS */
  const page = await request(`${gw.base}/oauth/authorize`, { headers: { Origin: APP } });
  noCors(page, '/oauth/authorize');
  await gw.stop();
});
