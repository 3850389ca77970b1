// The token, revocation and introspection endpoints under conditions the happy path never
// meets: a refresh refused for its resource or scope (the token must survive it), introspection
// by a client that is not a resource server, and a store on a full file system (a revocation
// that was not stored is not reported as done, yet takes effect in the process; a refresh on a
// full disk is a temporary error, not "unknown or expired").

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createUserClient, fullFlow, mcpInit, register, startAuthGateway, token } from './oauth_lib.mjs';
import { tempDir } from './lib.mjs';

function form(gw, endpoint, params, basic) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (basic) headers.authorization = 'Basic ' + Buffer.from(`${encodeURIComponent(basic[0])}:${encodeURIComponent(basic[1])}`).toString('base64');
  return fetch(`${gw.base}/oauth/${endpoint}`, { method: 'POST', headers, body: new URLSearchParams(params).toString() }).then(async (res) => ({ status: res.status, json: await res.json(), headers: res.headers }));
}

test('oauth tokens: a refresh refused for its resource or scope does not spend the refresh token', async (t) => {
  const gw = await startAuthGateway(t);
  const tok = await fullFlow(gw);
  const cid = tok.client.client_id;

  const foreign = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: cid, resource: `${gw.base}/mcp/a` });
  assert.equal(foreign.status, 400);
  assert.equal(foreign.json.error, 'invalid_target');
  assert.match(foreign.json.error_description, /resource differs from the one of the grant/);

  const wider = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: cid, scope: 'mcp admin' });
  assert.equal(wider.status, 400);
  assert.equal(wider.json.error, 'invalid_scope');
  assert.match(wider.json.error_description, /wider than the grant's/);

  // The same token, asked correctly, still works: it was not consumed by the refusals above.
  const ok = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: cid });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal((await mcpInit(gw.url, ok.json.access_token)).status, 200);
  // and the rotation still detects a replay of it
  const replay = await token(gw, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: cid });
  assert.equal(replay.status, 400);
  assert.match(replay.json.error_description, /already used/);
});

test('oauth tokens: introspection is for the token\'s own client and configured resource servers', async (t) => {
  const gw = await startAuthGateway(t, { resourceServer: true });
  const victim = await fullFlow(gw, { user: 'alice' });
  // Anyone may register a confidential client anonymously.
  const stranger = await register(gw, { token_endpoint_auth_method: 'client_secret_basic' });
  assert.ok(stranger.client_secret);
  const asStranger = await form(gw, 'introspect', { token: victim.access_token }, [stranger.client_id, stranger.client_secret]);
  assert.equal(asStranger.status, 200);
  assert.deepEqual(asStranger.json, { active: false }, 'a stranger learns nothing about the token');
  const refreshAsStranger = await form(gw, 'introspect', { token: victim.refresh_token }, [stranger.client_id, stranger.client_secret]);
  assert.deepEqual(refreshAsStranger.json, { active: false });
  assert.ok(gw.tail(200000).includes(`client ${stranger.client_id} asked about a token of client ${victim.client.client_id}`), 'the log says why');

  // The configured resource server sees it.
  const asRs = await form(gw, 'introspect', { token: victim.access_token }, gw.rs);
  assert.equal(asRs.json.active, true, JSON.stringify(asRs.json));
  assert.equal(asRs.json.client_id, victim.client.client_id);

  // A user's own confidential client sees its own tokens, and not alice's.
  const mine = createUserClient(gw.configFile, 'bob');
  const own = await token(gw, { grant_type: 'client_credentials' }, { basic: [mine.id, mine.secret] });
  assert.equal(own.status, 200, JSON.stringify(own.json));
  const asOwner = await form(gw, 'introspect', { token: own.json.access_token }, [mine.id, mine.secret]);
  assert.equal(asOwner.json.active, true, JSON.stringify(asOwner.json));
  assert.deepEqual((await form(gw, 'introspect', { token: victim.access_token }, [mine.id, mine.secret])).json, { active: false });
});

/* A real full file system: a small tmpfs mounted for this test (we run as root), with the store
   on it and a file that takes every free byte. SQLite then fails to grow its WAL with
   SQLITE_FULL, exactly as on a full disk in production. */
function mountSmallTmpfs(t) {
  const dir = tempDir();
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return { skip: `cannot mount a tmpfs (needs root): ${(r.stderr || r.error || '').toString().trim()}` };
  t.after(() => {
    spawnSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir };
}

function fillDisk(dir) {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(64 << 10, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    assert.equal(e.code, 'ENOSPC', String(e));
  }
  // the last partial pages too
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(512, 1));
  } catch (e) {
    assert.equal(e.code, 'ENOSPC', String(e));
  }
  fs.closeSync(fd);
  return () => fs.rmSync(file);
}

// (Not on a PostgreSQL store, GATEHOUSE_TEST_STORE=postgres: the full disk would be the server's.)
const onThisDisk = process.env.GATEHOUSE_TEST_STORE !== 'postgres';
(onThisDisk ? test : () => {})('oauth tokens: on a full disk, revocation answers 503 yet takes effect, and refresh is a temporary error', async (t) => {
  const m = mountSmallTmpfs(t);
  if (m.skip) return t.skip(m.skip);
  const gw = await startAuthGateway(t, { dir: m.dir, workers: 2 });
  const kept = await fullFlow(gw, { user: 'alice' }); // refreshed on the full disk
  const gone = await fullFlow(gw, { user: 'bob' }); // revoked on the full disk
  const cidKept = kept.client.client_id, cidGone = gone.client.client_id;
  assert.equal((await mcpInit(gw.url, gone.access_token)).status, 200, 'the token works before');

  const free = fillDisk(m.dir);
  // A refresh: 503 temporarily_unavailable, not invalid_grant (the client would throw the token away).
  const r1 = await token(gw, { grant_type: 'refresh_token', refresh_token: kept.refresh_token, client_id: cidKept });
  assert.equal(r1.status, 503, JSON.stringify(r1.json));
  assert.equal(r1.json.error, 'temporarily_unavailable');
  assert.match(r1.json.error_description, /store failed .*nothing was consumed, retry later/);
  assert.ok(r1.headers.get('retry-after'));

  // Revoking the access token: not stored, so not 200; but the token stops working at once, on
  // every worker (several requests spread over both).
  const rev = await form(gw, 'revoke', { token: gone.access_token, client_id: cidGone });
  assert.equal(rev.status, 503, JSON.stringify(rev.json));
  assert.equal(rev.json.error, 'temporarily_unavailable');
  assert.match(rev.json.error_description, /could not be written to the store .*in force on this gateway process/);
  for (let i = 0; i < 6; i++) {
    const r = await mcpInit(gw.url, gone.access_token);
    assert.equal(r.status, 401, `request ${i}: a revoked token still worked: ${r.text}`);
  }
  // Revoking the refresh token (its grant): the same.
  const revR = await form(gw, 'revoke', { token: gone.refresh_token, client_id: cidGone });
  assert.equal(revR.status, 503, JSON.stringify(revR.json));
  assert.ok(gw.tail(200000).match(/database or disk is full/), 'the log names the cause');

  // Space is back: the revoked refresh token stays revoked, the other one was not consumed.
  free();
  const dead = await token(gw, { grant_type: 'refresh_token', refresh_token: gone.refresh_token, client_id: cidGone });
  assert.equal(dead.status, 400, JSON.stringify(dead.json));
  assert.equal(dead.json.error, 'invalid_grant');
  assert.match(dead.json.error_description, /revoked/);
  assert.equal((await mcpInit(gw.url, gone.access_token)).status, 401);
  const r2 = await token(gw, { grant_type: 'refresh_token', refresh_token: kept.refresh_token, client_id: cidKept });
  assert.equal(r2.status, 200, JSON.stringify(r2.json));
  // A revocation retried now is stored: 200.
  const again = await form(gw, 'revoke', { token: gone.access_token, client_id: cidGone });
  assert.equal(again.status, 200, JSON.stringify(again.json));
});
