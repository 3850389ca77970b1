// Helpers for the OAuth integration tests: a gateway with auth on and a seeded store, PKCE,
// dynamic registration, the browser journey through the real login and consent pages, the
// token endpoint, and MCP requests with a bearer token.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Browser } from '../interop/lib/browser.mjs';
import { BIN, baseConfig, miniServer, post, startGateway, tempDir, writeConfig } from './lib.mjs';

export { Browser };
export const REDIRECT = 'http://127.0.0.1:9/callback';
export const PASSWORD = 'correct horse battery staple';

/** The real administration CLI on the store of a configuration file: `gatehouse ARGS -c FILE`.
    Returns stdout (trimmed); throws with the output when it exits non-zero. */
export function cli(configFile, args, { input = '' } = {}) {
  const r = spawnSync(BIN, [...args, '-c', configFile], { input, encoding: 'utf8', timeout: 20000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`gatehouse ${args.join(' ')} → ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** `gatehouse client create --user U`: the new client's id and secret. */
export function createUserClient(configFile, user) {
  const out = cli(configFile, ['client', 'create', '--user', user]);
  return { id: out.match(/^client_id: (\S+)$/m)[1], secret: out.match(/^client_secret: (\S+)$/m)[1] };
}

/** A gateway with auth enabled, servers a and b, and `users` (default alice and bob, with
    PASSWORD) added to its store by the CLI before it starts. `resourceServer`: also a
    configured confidential client with `introspect: true` (gw.rs = [id, secret]), the only
    kind of client that may introspect tokens issued to others. `dir`: where the store and the
    configuration go (default: a new temporary directory). */
/** The store of a test gateway: a SQLite file in `dir`; with GATEHOUSE_TEST_STORE=postgres (under
    tests/unit/store/with-postgres.sh), a new database of the throwaway PostgreSQL cluster. */
export function testStore(dir) {
  if (process.env.GATEHOUSE_TEST_STORE !== 'postgres') return { sqlite: path.join(dir, 'gh.db') };
  const { GH_TEST_PG_BINDIR: bin, GH_TEST_PG_HOST: host, GH_TEST_PG_PORT: port } = process.env;
  assert.ok(bin && host && port, 'GATEHOUSE_TEST_STORE=postgres runs under tests/unit/store/with-postgres.sh');
  const name = `gh_${crypto.randomBytes(6).toString('hex')}`;
  const r = spawnSync(path.join(bin, 'psql'), ['-X', '-q', '-h', host, '-p', port, '-U', 'postgres', '-d', 'postgres', '-c', `CREATE DATABASE ${name}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `createdb ${name}: ${r.stderr}`);
  return { postgres: `postgresql:///${name}?host=${encodeURIComponent(host)}&port=${port}&user=postgres`, key_file: path.join(dir, 'master.key') };
}

export async function startAuthGateway(t, { auth = {}, extra = {}, workers = 2, users = ['alice', 'bob'], resourceServer = false, dir = tempDir() } = {}) {
  const store = testStore(dir);
  const db = store.sqlite;
  const rs = ['resource-server', crypto.randomBytes(24).toString('base64url')];
  if (resourceServer) {
    fs.writeFileSync(path.join(dir, 'rs.secret'), rs[1] + '\n', { mode: 0o600 });
    auth = { ...auth, clients: [...(auth.clients ?? []), { client_id: rs[0], name: 'Resource server', redirect_uris: ['https://rs.example/cb'], secret_file: path.join(dir, 'rs.secret'), introspect: true }] };
  }
  const config = baseConfig({ workers, servers: [miniServer('a'), miniServer('b')], store, auth: { enabled: true, ...auth }, ...extra });
  const file = writeConfig(config, dir);
  for (const u of users) cli(file, ['user', 'add', u, '--password-stdin'], { input: `${PASSWORD}\n` });
  const gw = await startGateway(config, { t, dir });
  gw.db = db;
  if (resourceServer) gw.rs = rs;
  gw.cli = (args, opts) => cli(gw.configFile, args, opts);
  return gw;
}

export function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

export async function register(gw, meta = {}) {
  const res = await fetch(`${gw.base}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'Test client', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', ...meta }),
  });
  const json = await res.json();
  assert.equal(res.status, 201, JSON.stringify(json));
  return json;
}

export function authorizeUrl(gw, { client_id, challenge, resource = `${gw.base}/mcp`, state = 'st-1', redirect_uri = REDIRECT, extra = {} }) {
  const u = new URL(`${gw.base}/oauth/authorize`);
  const p = { response_type: 'code', client_id, redirect_uri, code_challenge: challenge, code_challenge_method: 'S256', resource, state, scope: 'mcp', ...extra };
  for (const [k, v] of Object.entries(p)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

const isCallback = (u) => u.startsWith('http://127.0.0.1:9/');

/** Through the login form and the consent page; returns the callback URL (with code or error). */
export async function browse(url, { browser = new Browser(), user = 'alice', password = PASSWORD, decision = 'approve' } = {}) {
  let { page, location } = await browser.follow(url, {}, isCallback);
  if (location) return { location: new URL(location), browser, page };
  if (page.text.includes('action="/oauth/login"')) {
    ({ page, location } = await browser.submit(page, { username: user, password }, { match: '/oauth/login', stop: isCallback }));
    if (location) return { location: new URL(location), browser, page };
  }
  if (page.status !== 200 || !page.text.includes('/oauth/consent')) return { page, browser };
  const form = Browser.forms(page).find((f) => f.fields.decision === decision);
  ({ page, location } = await browser.follow(form.action, { method: 'POST', form: form.fields, headers: { origin: new URL(url).origin } }, isCallback));
  return { location: location && new URL(location), browser, page };
}

export async function token(gw, form, { basic } = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (basic) headers.authorization = 'Basic ' + Buffer.from(`${encodeURIComponent(basic[0])}:${encodeURIComponent(basic[1])}`).toString('base64');
  const res = await fetch(`${gw.base}/oauth/token`, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

/** DCR + authorize + consent + code exchange; returns the token response and the client. */
export async function fullFlow(gw, { resource = `${gw.base}/mcp`, user = 'alice', client } = {}) {
  client ??= await register(gw);
  const { verifier, challenge } = pkce();
  const { location } = await browse(authorizeUrl(gw, { client_id: client.client_id, challenge, resource }), { user });
  assert.ok(location, 'no redirect back to the client');
  assert.equal(location.searchParams.get('state'), 'st-1');
  assert.equal(location.searchParams.get('iss'), gw.base);
  const code = location.searchParams.get('code');
  assert.ok(code, `no code: ${location}`);
  const r = await token(gw, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: client.client_id, resource });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return { ...r.json, client, code, verifier };
}

/** initialize at url with a bearer token. */
export function mcpInit(url, tok, headers = {}) {
  return post(
    url,
    { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'oauth-test', version: '1' } } },
    { version: null, headers: { ...(tok ? { Authorization: `Bearer ${tok}` } : {}), ...headers } },
  );
}

export function mcpCall(url, tok, session, method, params = {}) {
  return post(url, { jsonrpc: '2.0', id: 7, method, params }, { session, headers: tok ? { Authorization: `Bearer ${tok}` } : {} });
}
