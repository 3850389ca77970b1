// Session ids any replica can resume (docs/architecture.md, "Sessions any replica resumes"): two
// gateway processes share one store and its key file (as replicas behind a load balancer do).
// A session initialised on A is used on B, which never saw it; a tampered id, or A's id under
// another user's token, is 404 on either.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { baseConfig, miniServer, post, runGatehouse, startGateway, tempDir, until, writeConfig } from './lib.mjs';
import { PASSWORD, cli, createUserClient, testStore, token } from './oauth_lib.mjs';

const ISSUER = 'http://127.0.0.1:9'; // the public URL both replicas stand behind

function call(url, tok, sid, method, params, id = 1) {
  return post(url, { jsonrpc: '2.0', id, method, params }, { session: sid, headers: { Authorization: `Bearer ${tok}` } });
}

test('a session initialised on replica A is served by replica B; tampered or foreign ids are 404', async (t) => {
  const dir = tempDir();
  const keyFile = path.join(dir, 'master.key');
  const store = { ...testStore(dir), key_file: keyFile }; // one SQLite file, or one PostgreSQL database
  const cfg = baseConfig({ workers: 2, servers: [miniServer('a')], store, auth: { enabled: true, issuer: ISSUER } });
  const file = writeConfig(cfg, dir);
  for (const u of ['alice', 'bob']) cli(file, ['user', 'add', u, '--password-stdin'], { input: `${PASSWORD}\n` });
  const a = await startGateway(cfg, { t, dir: tempDir() });
  const b = await startGateway(cfg, { t, dir: tempDir() });
  const tok = async (user) => {
    const { id, secret } = createUserClient(file, user);
    const r = await token(a, { grant_type: 'client_credentials', resource: `${ISSUER}/mcp` }, { basic: [id, secret] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.access_token;
  };
  const alice = await tok('alice');
  const bob = await tok('bob');

  const init = await post(
    a.url,
    { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: { sampling: {} }, clientInfo: { name: 'replica-test', version: '1' } } },
    { version: null, headers: { Authorization: `Bearer ${alice}` } },
  );
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  assert.match(sid, /^gs1\.[A-Za-z0-9_-]+$/);

  // B never saw it, and serves it.
  const r = await call(b.url, alice, sid, 'tools/call', { name: 'tool', arguments: { text: 'on B' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json?.result?.content?.[0]?.text, 'a:on B', r.text);
  await until(() => b.lines.some((l) => l.includes('resumed a session sealed by a replica')), { what: `the resume logged\n${b.tail()}` });
  // And A still does.
  const back = await call(a.url, alice, sid, 'tools/list', {});
  assert.equal(back.status, 200, back.text);

  // A tampered id: one character of the sealed part changed.
  const i = sid.length - 10;
  const tampered = sid.slice(0, i) + (sid[i] === 'A' ? 'B' : 'A') + sid.slice(i + 1);
  for (const gw of [a, b]) {
    const x = await call(gw.url, alice, tampered, 'tools/list', {});
    assert.equal(x.status, 404, x.text);
  }
  // Another user presenting alice's session id.
  for (const gw of [a, b]) {
    const x = await call(gw.url, bob, sid, 'tools/list', {});
    assert.equal(x.status, 404, x.text);
    assert.match(x.json?.error?.message ?? '', /session not found/);
  }
  // A third replica started fresh resumes it too (nothing but the key is shared).
  const c = await startGateway(cfg, { t, dir: tempDir() });
  const onC = await call(c.url, alice, sid, 'tools/call', { name: 'tool', arguments: { text: 'on C' } });
  assert.equal(onC.json?.result?.content?.[0]?.text, 'a:on C', onC.text);
  await Promise.all([a.stop(), b.stop(), c.stop()]);
});

// Replicas on one store must share the master key: the first start records the key's check value
// in the store, and a replica started with another key file is refused, with a message that says
// so, before it listens (on SQLite and, in the postgres phase, on PostgreSQL).
test('a replica with another master key than the store was first used with is refused', async (t) => {
  for (const auth of [{ enabled: true, issuer: ISSUER }, undefined]) {
    const dir = tempDir();
    const store = { ...testStore(dir), key_file: path.join(dir, 'master.key') };
    const cfg = baseConfig({ workers: 1, servers: [miniServer('a')], store, ...(auth ? { auth } : {}) });
    const a = await startGateway(cfg, { t, dir: tempDir() });
    const other = baseConfig({ workers: 1, servers: [miniServer('a')], store: { ...store, key_file: path.join(dir, 'other.key') }, ...(auth ? { auth } : {}) });
    const file = writeConfig(other, tempDir());
    const r = await runGatehouse(['run', '-c', file], { timeout: 20000 });
    const what = `${auth ? 'with' : 'without'} auth: exit ${r.code}\n${r.stderr}`;
    assert.equal(r.code, 1, what);
    assert.match(r.stderr, /the master key in \S*other\.key is not the one this (sqlite|postgres) store was first used with/, what);
    assert.match(r.stderr, /every replica on one store needs the same key file/, what);
    assert.doesNotMatch(r.stderr + r.stdout, /"listening"/, what);
    // The CLI's key rotation, which seals a new signing key with the key it reads, too.
    const k = await runGatehouse(['keys', 'rotate', '-c', file], { timeout: 20000 });
    assert.equal(k.code, 1, `keys rotate: ${k.stderr}`);
    assert.match(k.stderr, /the master key in \S*other\.key is not the one this (sqlite|postgres) store was first used with/, k.stderr);
    // The same key as A's is welcome, A's first or not.
    const b = await startGateway(cfg, { t, dir: tempDir() });
    await Promise.all([a.stop(), b.stop()]);
  }
});
