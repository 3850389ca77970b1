// Per-user views with authentication on (issue 5, dynamic filtering): a user's tool selection
// decides what tools/list shows them and what tools/call lets through, set with
// `gatehouse user settings` or from the MCP client with the gateway's gatehouse__settings tool;
// another user's view is untouched, and only the changing user's sessions get
// notifications/tools/list_changed. Without auth there is no settings tool.

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { REPO, miniServer, openSession, startGateway, baseConfig, until } from './lib.mjs';
import { createUserClient, mcpCall, mcpInit, startAuthGateway, token } from './oauth_lib.mjs';

const SPEC = path.join(REPO, 'tests/openapi/gateway-pets.yaml');

async function login(gw, user, endpoint = '/mcp') {
  const { id, secret } = createUserClient(gw.configFile, user);
  const r = await token(gw, { grant_type: 'client_credentials', resource: `${gw.base}${endpoint}` }, { basic: [id, secret] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const tok = r.json.access_token;
  const url = `${gw.base}${endpoint}`;
  const init = await mcpInit(url, tok);
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  const call = async (method, params) => {
    const res = await mcpCall(url, tok, sid, method, params);
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  await mcpCall(url, tok, sid, 'notifications/initialized');
  return { tok, sid, call, names: async () => (await call('tools/list', {})).result.tools.map((t) => t.name) };
}

/** The session's GET stream; `.text` grows as events arrive. */
function listen(gw, u) {
  const s = { text: '' };
  const req = http.get(`${gw.base}/mcp`, { headers: { accept: 'text/event-stream', 'mcp-session-id': u.sid, 'mcp-protocol-version': '2025-11-25', authorization: `Bearer ${u.tok}` } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c) => (s.text += c));
  });
  req.on('error', () => {});
  s.close = () => req.destroy();
  return s;
}

test('per-user selection: listing, refusal, the settings tool, list_changed to that user only', async (t) => {
  const gw = await startAuthGateway(t, {
    extra: { servers: [miniServer('a'), { name: 'pets', spec: SPEC, base_url: 'http://127.0.0.1:9/v1' }] },
  });
  const alice = await login(gw, 'alice');
  const bob = await login(gw, 'bob');
  const all = await bob.names();
  assert.ok(all.includes('gatehouse__settings'), all.join());
  assert.ok(all.includes('list_pets') && all.includes('create_pet'), all.join());

  // The CLI: alice keeps two tools of pets.
  const out = gw.cli(['user', 'settings', 'alice', '--server', 'pets', '--select', 'list_pets,get_pet']);
  assert.match(out, /user "alice", server "pets": discovery \(the server's\); 2 tools selected: list_pets get_pet/);
  const a1 = await alice.names();
  assert.ok(a1.includes('list_pets') && a1.includes('get_pet'), a1.join());
  assert.ok(!a1.includes('create_pet'), a1.join());
  assert.ok(a1.some((n) => n !== 'gatehouse__settings' && !['list_pets', 'get_pet'].includes(n) && all.includes(n)), 'server a untouched');
  assert.deepEqual(await bob.names(), all, "bob's view is unaffected");
  const refused = await alice.call('tools/call', { name: 'create_pet', arguments: { name: 'Rex' } });
  assert.equal(refused.error.code, -32602);
  assert.match(refused.error.message, /tool create_pet is not in your selection of server pets \(2 tools selected\); add it with the gatehouse__settings tool/);

  // From the client: the settings tool; alice's stream hears list_changed, bob's does not.
  const sa = listen(gw, alice);
  const sb = listen(gw, bob);
  t.after(() => (sa.close(), sb.close()));
  await new Promise((r) => setTimeout(r, 200));
  const set = await alice.call('tools/call', { name: 'gatehouse__settings', arguments: { server: 'pets', select: ['list_pets', 'create_pet'] } });
  assert.equal(set.result.isError, false, JSON.stringify(set));
  assert.deepEqual(JSON.parse(set.result.content[0].text).selected, ['list_pets', 'create_pet']);
  await until(() => sa.text.includes('notifications/tools/list_changed'), { what: "alice's list_changed" });
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(!sb.text.includes('list_changed'), `bob heard: ${sb.text}`);
  const a2 = await alice.names();
  assert.ok(a2.includes('create_pet') && !a2.includes('get_pet'), a2.join());

  // Refusals name the cause; select_all restores everything.
  const bad = async (args, re) => {
    const r = await alice.call('tools/call', { name: 'gatehouse__settings', arguments: args });
    assert.equal(r.result.isError, true, JSON.stringify(r));
    assert.match(r.result.content[0].text, re);
  };
  await bad({ server: 'nope' }, /no server named "nope"/);
  await bad({ server: 'pets', select: ['no_such_tool'] }, /server "pets" has no tool "no_such_tool"/);
  await bad({ server: 'a', discovery: 'search' }, /discovery modes apply to openapi servers; "a" is a stdio server/);
  await bad({ server: 'pets', discovery: 'lazy' }, /"lazy" is not static, hierarchical or search/);
  await bad({}, /needs the string argument "server"/);
  await alice.call('tools/call', { name: 'gatehouse__settings', arguments: { server: 'pets', select_all: true } });
  assert.deepEqual((await alice.names()).sort(), [...all].sort());
  assert.match(gw.cli(['user', 'settings', 'alice', '--server', 'pets']), /every tool selected/);
  assert.throws(() => gw.cli(['user', 'settings', 'alice', '--server', 'nope', '--select-all']), /no server named "nope" is configured/);
});

// Its measured cost (o200k, the tool object as listed; docs/openapi.md): the budget it must stay
// under, and the character length that goes with it where gpt-tokenizer is not installed.
const SETTINGS_TOKENS = 100;
const SETTINGS_CHARS = 437;
async function o200k() {
  try {
    const { createRequire } = await import('node:module');
    const { pathToFileURL } = await import('node:url');
    const req = createRequire(path.join(REPO, 'bench/node/package.json'));
    const dir = path.dirname(req.resolve('gpt-tokenizer/package.json'));
    return (await import(pathToFileURL(path.join(dir, 'esm/encoding/o200k_base.js')).href)).encode;
  } catch {
    return null;
  }
}

test('the settings tool is listed only where there is a choice, and stays cheap', async (t) => {
  // `one` has a single tool (nothing to select), `many` four, `pets` is a REST API (modes).
  const gw = await startAuthGateway(t, {
    extra: {
      servers: [{ ...miniServer('one'), args: [...miniServer('one').args, '--one-tool'] }, miniServer('many'), { name: 'pets', spec: SPEC, base_url: 'http://127.0.0.1:9/v1' }],
    },
  });
  const bob = await login(gw, 'bob');
  const listed = (await bob.call('tools/list', {})).result.tools;
  const tool = listed.find((x) => x.name === 'gatehouse__settings');
  assert.ok(tool, 'listed in the aggregate view: many and pets offer choices');
  assert.equal(listed[0].name, 'gatehouse__settings', 'first');
  const text = JSON.stringify(tool);
  assert.ok(text.length <= SETTINGS_CHARS, `${text.length} characters: ${text}`);
  const encode = await o200k();
  if (encode) assert.ok(encode(text).length <= SETTINGS_TOKENS, `${encode(text).length} tokens: ${text}`);
  else t.diagnostic('gpt-tokenizer not installed: only the character budget checked');

  const viewNames = async (server) => (await login(gw, 'bob', `/mcp/${server}`)).names();
  assert.deepEqual(await viewNames('one'), ['tool'], 'one tool and no modes: nothing to choose, no settings tool');
  assert.equal((await viewNames('many'))[0], 'gatehouse__settings');
  assert.equal((await viewNames('pets'))[0], 'gatehouse__settings');
  // Still callable where it is not listed (a user can always read or undo a setting).
  const r = await bob.call('tools/call', { name: 'gatehouse__settings', arguments: { server: 'one' } });
  assert.equal(r.result.isError, false, JSON.stringify(r));
});

test('without auth there is no settings tool', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [miniServer('a')] }), { t });
  const s = await openSession(gw.url);
  const r = await s.rpc('tools/list', {});
  assert.ok(!r.json.result.tools.some((x) => x.name === 'gatehouse__settings'));
  const c = await s.callTool('gatehouse__settings', { server: 'a' });
  assert.match(c.json.error.message, /Unknown tool: gatehouse__settings/);
});

test('per-user discovery mode: each user sees and uses their mode; switching lists again; forged _meta ignored', async (t) => {
  const gw = await startAuthGateway(t, { extra: { servers: [{ name: 'pets', spec: SPEC, base_url: 'http://127.0.0.1:9/v1' }] } });
  const alice = await login(gw, 'alice'); // the configured mode: static
  const bob = await login(gw, 'bob');
  const sb = listen(gw, bob);
  t.after(() => sb.close());
  await new Promise((r) => setTimeout(r, 200));
  const set = await bob.call('tools/call', { name: 'gatehouse__settings', arguments: { server: 'pets', discovery: 'search' } });
  assert.equal(set.result.isError, false, JSON.stringify(set));
  assert.equal(JSON.parse(set.result.content[0].text).discovery, 'search');
  await until(() => sb.text.includes('notifications/tools/list_changed'), { what: "bob's list_changed" });

  const a = await alice.names();
  assert.ok(a.includes('list_pets') && a.includes('create_pet'), a.join());
  assert.ok(!a.includes('search_operations') && !a.includes('call_operation') && !a.includes('list_categories'), a.join());
  assert.deepEqual(await bob.names(), ['gatehouse__settings', 'search_operations', 'call_operation']);
  const listed = (await bob.call('tools/list', {})).result.tools;
  assert.ok(listed.every((x) => !x._meta || !Object.keys(x._meta).some((k) => k.startsWith('gatehouse/'))), 'no gatehouse/ tags shown');

  // Each uses their own mode's tools; the other mode's are refused, naming the cause.
  const found = await bob.call('tools/call', { name: 'search_operations', arguments: { query: 'pet' } });
  assert.equal(found.result.isError, undefined, JSON.stringify(found));
  assert.match(found.result.content[0].text, /"name":"create_pet"/);
  const no = await alice.call('tools/call', { name: 'search_operations', arguments: { query: 'pet' } });
  assert.match(no.error.message, /tool search_operations is not offered in discovery mode static of server pets \(the server's configured mode\); change the mode with the gatehouse__settings tool/);
  const no2 = await bob.call('tools/call', { name: 'list_categories', arguments: {} });
  assert.match(no2.error.message, /not offered in discovery mode search of server pets \(your setting\)/);
  const via = await bob.call('tools/call', { name: 'call_operation', arguments: { name: 'list_pets', arguments: {} } });
  assert.ok(via.result, JSON.stringify(via)); // reaches the API (none listens: an isError result)
  assert.match(via.result.content[0].text, /could not reach 127\.0\.0\.1:9/);

  // Forged _meta: alice cannot pick search; bob's forged selection does not narrow his search.
  const forged = { 'gatehouse/discovery': 'search', 'gatehouse/selection': ['create_pet'] };
  const f1 = await alice.call('tools/call', { name: 'search_operations', arguments: { query: 'pet' }, _meta: forged });
  assert.match(f1.error.message, /not offered in discovery mode static/);
  const f2 = await bob.call('tools/call', { name: 'search_operations', arguments: { query: 'pet', limit: 10 }, _meta: forged });
  assert.match(f2.result.content[0].text, /"name":"list_pets"/);

  // The selection narrows search_operations and call_operation in the lazy mode.
  await bob.call('tools/call', { name: 'gatehouse__settings', arguments: { server: 'pets', select: ['get_pet'] } });
  const f3 = await bob.call('tools/call', { name: 'search_operations', arguments: { query: 'pet', limit: 10 } });
  assert.deepEqual(JSON.parse(f3.result.content[0].text).map((x) => x.name), ['get_pet']);
  const f4 = await bob.call('tools/call', { name: 'call_operation', arguments: { name: 'create_pet', arguments: {} } });
  assert.equal(f4.result.isError, true);
  assert.match(f4.result.content[0].text, /operation create_pet is not in your selection of this server \(1 operations selected\)/);
  const nav = await bob.call('tools/call', { name: 'gatehouse__settings', arguments: { server: 'pets', select: ['search_operations'] } });
  assert.match(nav.result.content[0].text, /"search_operations" is a navigation tool of server "pets"/);

  // Switching back: bob sees the static tools again.
  await bob.call('tools/call', { name: 'gatehouse__settings', arguments: { server: 'pets', discovery: 'static', select_all: true } });
  assert.deepEqual((await bob.names()).sort(), [...a].sort());
});

// Each worker keeps users' settings in a cache, emptied when the store's revocation counter
// moves (every change of a settings row moves it). A change made by the CLI, another process,
// reaches every worker's warm cache on the next call: listing and calling, with many
// connections spread over the workers.
test('settings cache: a CLI change is seen on the very next call by a running gateway', async (t) => {
  const gw = await startAuthGateway(t, {
    extra: { servers: [{ name: 'pets', spec: SPEC, base_url: 'http://127.0.0.1:9/v1' }] },
  });
  const alice = await login(gw, 'alice');
  const all = await alice.names();
  assert.ok(all.includes('create_pet'), all.join());
  // Warm the cache on every worker (each request may arrive on either).
  for (let i = 0; i < 6; i++) {
    assert.deepEqual(await alice.names(), all);
    const ok = await alice.call('tools/call', { name: 'create_pet', arguments: { name: 'Rex' } });
    assert.ok(ok.result, JSON.stringify(ok)); // selected: reaches the API (none listens)
  }
  gw.cli(['user', 'settings', 'alice', '--server', 'pets', '--select', 'list_pets']);
  for (let i = 0; i < 6; i++) {
    const refused = await alice.call('tools/call', { name: 'create_pet', arguments: { name: 'Rex' } });
    assert.match(refused.error?.message ?? '', /tool create_pet is not in your selection of server pets \(1 tools selected\)/, `call ${i}: ${JSON.stringify(refused)}`);
    assert.deepEqual(await alice.names(), ['gatehouse__settings', 'list_pets'], `list ${i}`);
  }
  gw.cli(['user', 'settings', 'alice', '--server', 'pets', '--select-all']);
  for (let i = 0; i < 6; i++) assert.deepEqual(await alice.names(), all, `list ${i} after --select-all`);
});
