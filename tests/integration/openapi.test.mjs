// The openapi transport end to end: a REST API described by tests/openapi/gateway-pets.yaml,
// served through /mcp. A recording HTTP server on loopback stands in for the API; every tool
// call is checked against the exact request the document demands (method, path, query,
// headers, body), and the answers against the MCP tool-result mapping (docs/openapi.md).
// The API key configured in `headers` must reach the API and appear nowhere else: not in a
// tool's schema, not in any answer (even when the API echoes it), not in the gateway's log.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { closedLoopbackPort, REPO, baseConfig, openSession, readyz, runGatehouse, startGateway } from './lib.mjs';

const SPEC = path.join(REPO, 'tests/openapi/gateway-pets.yaml');
const BROKEN = path.join(REPO, 'tests/openapi/broken-ref.yaml');
const OVERLAY = path.join(REPO, 'tests/openapi/gateway-pets-overlay.yaml');
const BAD_OVERLAY = path.join(REPO, 'tests/openapi/overlay-bad.yaml');
const FIELDS = path.join(REPO, 'tests/openapi/gateway-pets-fields.yaml');
const SECRET = `sk-test-${Math.random().toString(36).slice(2)}${Date.now()}`;

let api;
let apiPort;
let closedPort;
let gw;
let s;
const seen = []; // every request the API got: {method, url, headers, body}
const responses = []; // every HTTP body the client got, for the secret check

function recordingServer() {
  return http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const u = new URL(req.url, 'http://x');
      const json = (status, v) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      if (req.method === 'GET' && u.pathname === '/v1/pets') return json(200, [{ id: '1', name: 'Rex' }]);
      if (req.method === 'POST' && u.pathname === '/v1/pets') return json(201, { id: '7', ...JSON.parse(body) });
      if (req.method === 'GET' && u.pathname === '/v1/pets/missing') return json(404, { message: 'no such pet' });
      if (req.method === 'GET' && u.pathname === '/v1/pets/echo') return json(200, { headers: req.headers });
      if (req.method === 'GET' && u.pathname === '/v1/pets/boom') return json(500, { error: `internal, key was ${req.headers['x-api-key']}` });
      if (req.method === 'GET' && u.pathname === '/v1/pets/noisy')
        return json(200, {
          id: 'noisy',
          name: 'Rex',
          tag: null,
          owner: {},
          nick: '',
          alive: false,
          _links: { self: { href: '/v1/pets/noisy' } },
          url: `http://127.0.0.1:${apiPort}/v1/pets/noisy`,
          toys_url: `http://127.0.0.1:${apiPort}/v1/pets/noisy/toys{/toy}`,
          html_url: 'https://pets.example/noisy',
          photos: Array.from({ length: 25 }, (_, i) => ({ w: i, h: null })),
        });
      if (req.method === 'GET' && u.pathname.startsWith('/v1/pets/')) return json(200, { id: u.pathname.slice(9), name: 'Rex', tag: 'dog' });
      if (req.method === 'DELETE') {
        res.writeHead(204);
        return res.end();
      }
      if (req.method === 'POST' && u.pathname.endsWith('/notes')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        return res.end('noted');
      }
      if (u.pathname === '/v1/big') return json(200, { items: Array.from({ length: 5000 }, (_, i) => ({ i, s: 'x'.repeat(1000) })) });
      res.writeHead(418);
      res.end();
    });
  });
}

before(async () => {
  api = recordingServer();
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  apiPort = api.address().port;
  closedPort = await closedLoopbackPort();
  gw = await startGateway(
    baseConfig({
      servers: [
        { name: 'pets', spec: SPEC, base_url: `http://127.0.0.1:${apiPort}/v1`, headers: { 'X-API-Key': SECRET }, timeouts: { total: '10s' } },
        { name: 'deadapi', transport: 'openapi', spec: SPEC, base_url: `http://127.0.0.1:${closedPort}/v1`, headers: { 'X-API-Key': SECRET }, timeouts: { connect: '2s' } },
        { name: 'broken', spec: BROKEN },
        { name: 'pets_tree', spec: SPEC, discovery: 'hierarchical', base_url: `http://127.0.0.1:${apiPort}/v1`, headers: { 'X-API-Key': SECRET } },
        { name: 'pets_find', spec: SPEC, discovery: 'search', base_url: `http://127.0.0.1:${apiPort}/v1`, headers: { 'X-API-Key': SECRET } },
        { name: 'pets_trim', spec: SPEC, overlays: [OVERLAY], base_url: `http://127.0.0.1:${apiPort}/v1`, headers: { 'X-API-Key': SECRET } },
        { name: 'pets_badov', spec: SPEC, overlays: [BAD_OVERLAY] },
        { name: 'pets_fields', spec: SPEC, overrides: FIELDS, base_url: `http://127.0.0.1:${apiPort}/v1`, headers: { 'X-API-Key': SECRET } },
      ],
    }),
  );
  s = await openSession(`${gw.base}/mcp/pets`);
});

after(async () => {
  try {
    if (gw) await gw.stop();
  } finally {
    if (gw?.alive) await gw.kill();
    api?.close();
  }
});

async function call(name, args, session = s) {
  const before = seen.length;
  const r = await session.callTool(name, args);
  responses.push(r.text);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json, r.text);
  return { r, res: r.json.result, err: r.json.error, reqs: seen.slice(before) };
}

describe('openapi transport: catalog', () => {
  test('tools/list gives the curated tools, without the API key parameter', async () => {
    const r = await s.rpc('tools/list', {});
    responses.push(r.text);
    assert.equal(r.status, 200, r.text);
    const tools = r.json.result.tools;
    assert.deepEqual(tools.map((t) => t.name).sort(), ['add_note', 'create_pet', 'delete_pet', 'get_big', 'get_pet', 'list_pets']);
    const list = tools.find((t) => t.name === 'list_pets');
    assert.equal(list.description, 'List pets.');
    assert.deepEqual(Object.keys(list.inputSchema.properties), ['limit', 'tags', 'X-Request-Tag']);
    assert.equal(list.annotations.readOnlyHint, true);
    assert.equal(tools.find((t) => t.name === 'delete_pet').annotations.destructiveHint, true);
    assert.ok(!r.text.includes('X-API-Key'), 'the credential header is never a parameter');
  });

  test('/readyz: the API servers are ready; a broken document is stopped with file and pointer', async () => {
    const r = await readyz(gw);
    assert.equal(r.body.servers.pets.state, 'ready', r.text);
    assert.equal(r.body.servers.pets.transport, 'openapi', r.text);
    assert.equal(r.body.servers.pets.tools, 6, r.text);
    assert.equal(r.body.servers.deadapi.state, 'ready', r.text);
    const b = r.body.servers.broken;
    assert.equal(b.state, 'stopped', r.text);
    assert.ok(b.why.includes('broken-ref.yaml'), r.text);
    assert.ok(b.why.includes('/paths/~1a/get/responses/200/content/application~1json/schema/$ref'), r.text);
    assert.equal(r.status, 503, r.text);
  });

  test('overlays: applied before conversion; an unmatched action is logged; a bad one stops the server', async () => {
    const t = await openSession(`${gw.base}/mcp/pets_trim`);
    const r = await t.rpc('tools/list', {});
    assert.equal(r.status, 200, r.text);
    const tools = r.json.result.tools;
    assert.deepEqual(tools.map((x) => x.name).sort(), ['add_note', 'create_pet', 'get_big', 'get_pet', 'list_pets']);
    assert.equal(tools.find((x) => x.name === 'list_pets').description, 'List the pets of the shop.');
    const warn = gw.events.find((l) => l.event === 'openapi_overlay');
    assert.ok(warn, gw.tail(50));
    assert.equal(warn.level, 'warn');
    assert.match(warn.msg, /upstream pets_trim: overlay .*gateway-pets-overlay\.yaml: action 3 \(target \$\.paths\['\/kennels'\], "removed upstream"\) matches nothing/);
    const rz = await readyz(gw);
    const b = rz.body.servers.pets_badov;
    assert.equal(b.state, 'stopped', rz.text);
    assert.match(b.why, /overlay-bad\.yaml: JSONPath '\$\.paths\[0:2\]' at character 8: array slices \(\[start:end\]\) are not supported \(at \/actions\/1\/target\)/);
  });

  test('initialize through the server view and ping are answered', async () => {
    const p = await s.rpc('ping', undefined, { id: 'p1' });
    assert.deepEqual(p.json, { jsonrpc: '2.0', id: 'p1', result: {} });
  });
});

describe('openapi transport: requests are exactly what the document demands', () => {
  test('GET with query (exploded array), header parameter and the configured key', async () => {
    const { res, reqs } = await call('list_pets', { limit: 5, tags: ['a b', 'c&d'], 'X-Request-Tag': 'rt-1' });
    assert.equal(reqs.length, 1);
    const q = reqs[0];
    assert.equal(q.method, 'GET');
    assert.equal(q.url, '/v1/pets?limit=5&tags=a%20b&tags=c%26d');
    assert.equal(q.headers['x-request-tag'], 'rt-1');
    assert.equal(q.headers['x-api-key'], SECRET);
    assert.equal(q.headers.accept, 'application/json');
    assert.equal(q.body, '');
    assert.ok(!('isError' in res), JSON.stringify(res));
    assert.equal(res.content[0].type, 'text');
    assert.equal(res.content[0].text, '[{"id":"1","name":"Rex"}]');
    assert.equal(res.structuredContent, undefined, 'an array is not structuredContent');
  });

  test('POST with a JSON body', async () => {
    const { res, reqs } = await call('create_pet', { name: 'Bo', age: 3 });
    const q = reqs[0];
    assert.equal(q.method, 'POST');
    assert.equal(q.url, '/v1/pets');
    assert.equal(q.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(q.body), { name: 'Bo', age: 3 });
    assert.equal(q.headers.expect, undefined, 'no 100-continue');
    assert.deepEqual(res.structuredContent, { id: '7', name: 'Bo', age: 3 });
    assert.deepEqual(JSON.parse(res.content[0].text), { id: '7', name: 'Bo', age: 3 });
  });

  test('path escaping, a non-exploded array and a cookie', async () => {
    const { res, reqs } = await call('get_pet', { petId: 'a/b c', fields: ['name', 'tag'], session: 's 1' });
    const q = reqs[0];
    assert.equal(q.method, 'GET');
    assert.equal(q.url, '/v1/pets/a%2Fb%20c?fields=name,tag');
    assert.equal(q.headers.cookie, 'session=s%201');
    assert.equal(res.structuredContent.name, 'Rex');
  });

  test('POST with a form body (nested keys) and a text/plain answer summarised', async () => {
    const { res, reqs } = await call('add_note', { petId: '9', text: 'good dog', metadata: { by: 'ann' } });
    const q = reqs[0];
    assert.equal(q.method, 'POST');
    assert.equal(q.url, '/v1/pets/9/notes');
    assert.equal(q.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(q.body, 'text=good%20dog&metadata[by]=ann');
    assert.equal(res.content[0].text, 'HTTP 200, text/plain, 5 bytes:\nnoted');
  });

  test('DELETE with 204', async () => {
    const { res, reqs } = await call('delete_pet', { petId: '9' });
    assert.equal(reqs[0].method, 'DELETE');
    assert.equal(reqs[0].url, '/v1/pets/9');
    assert.equal(res.content[0].text, 'HTTP 204, no content');
    assert.ok(!res.isError);
  });

  test('a large JSON answer: 20 items kept with a note, then cut at 16 KiB with a marker, no structuredContent', async () => {
    const { res } = await call('get_big', {});
    const text = res.content[0].text;
    assert.match(text, /\[truncated by gatehouse: 16384 of \d+ bytes shown\]\n\[projected by gatehouse: 4980 array items not shown \(1 arrays cut\)\]$/);
    assert.ok(text.length < 17000, `${text.length}`);
    assert.equal(res.structuredContent, undefined);
  });
});

describe('openapi transport: response projection', () => {
  test('defaults: empty values, _links and links into the API dropped, arrays cut with a note', async () => {
    const { res } = await call('get_pet', { petId: 'noisy' });
    const photos = [...Array.from({ length: 20 }, (_, i) => ({ w: i })), '[gatehouse: 5 more items not shown, 25 in all]'];
    const projected = { id: 'noisy', name: 'Rex', alive: false, html_url: 'https://pets.example/noisy', photos };
    assert.equal(
      res.content[0].text,
      `${JSON.stringify(projected)}\n[projected by gatehouse: 5 array items not shown (1 arrays cut); 23 empty or null fields omitted; 3 links into the API omitted]`,
    );
    assert.deepEqual(res.structuredContent, projected);
  });

  test('fields chosen in the overrides file: only those, the array cap of that file', async () => {
    const fs2 = await openSession(`${gw.base}/mcp/pets_fields`);
    const { res, reqs } = await call('get_pet', { petId: 'noisy' }, fs2);
    assert.equal(reqs[0].url, '/v1/pets/noisy');
    const projected = { name: 'Rex', photos: [{ w: 0 }, { w: 1 }, { w: 2 }, '[gatehouse: 22 more items not shown, 25 in all]'] };
    assert.equal(
      res.content[0].text,
      `${JSON.stringify(projected)}\n[projected by gatehouse: only the response fields chosen by the operator: name, /photos/[]/w; 22 array items not shown (1 arrays cut)]`,
    );
    assert.deepEqual(res.structuredContent, projected);
  });

  test('openapi inspect --project previews it; a bad field is refused with its position', async () => {
    const r = await runGatehouse(['openapi', 'inspect', SPEC, '--overrides', FIELDS, '--project', 'getPet'], { input: '{"name":"Rex","age":3}' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"name":"Rex"}\n[projected by gatehouse: only the response fields chosen by the operator: name, /photos/[]/w]\n');
    const bad = path.join(os.tmpdir(), `gh-fields-${process.pid}.yaml`);
    fs.writeFileSync(bad, 'overrides:\n  getPet:\n    response: {fields: [name, "a..b"]}\n');
    const e = await runGatehouse(['openapi', 'inspect', SPEC, '--overrides', bad, '--project', 'getPet'], { input: '{}' });
    fs.rmSync(bad);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /response field 'a\.\.b' at character 3: empty segment \(at \/overrides\/getPet\/response\/fields\/1\)/);
    const unknown = await runGatehouse(['openapi', 'inspect', SPEC, '--project', 'getCat'], { input: '{}' });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no tool, operationId or "METHOD \/path" "getCat"/);
  });
});

describe('openapi transport: lazy discovery modes', () => {
  let tree;
  let find;
  before(async () => {
    tree = await openSession(`${gw.base}/mcp/pets_tree`);
    find = await openSession(`${gw.base}/mcp/pets_find`);
  });
  const list = async (session) => {
    const r = await session.rpc('tools/list', {});
    responses.push(r.text);
    assert.equal(r.status, 200, r.text);
    return r.json.result.tools;
  };
  const text = (res) => res.content[0].text;
  // The request as the API saw it, for comparing a lazy call with the static one.
  const wire = (q) => ({ method: q.method, url: q.url, headers: q.headers, body: q.body });

  test('tools/list in each mode: the catalog, four navigation tools, search + call', async () => {
    assert.equal((await list(s)).length, 6);
    assert.deepEqual((await list(tree)).map((t) => t.name), ['list_categories', 'list_operations', 'describe_operation', 'call_operation']);
    assert.deepEqual((await list(find)).map((t) => t.name), ['search_operations', 'call_operation']);
  });

  test('hierarchical: categories → operations → description → call, the request exactly the static one', async () => {
    const cats = await call('list_categories', {}, tree);
    assert.equal(text(cats.res), '2 categories (name (operations): description); list_operations lists one:\nbig (1): Operations on /big.\npets (5): Operations on /pets.');
    assert.equal(cats.reqs.length, 0, 'navigation sends nothing to the API');
    const ops = await call('list_operations', { category: 'pets' }, tree);
    assert.match(text(ops.res), /\ncreate_pet: Create a pet\.\n/);
    const desc = await call('describe_operation', { name: 'create_pet' }, tree);
    const staticTool = (await list(s)).find((t) => t.name === 'create_pet');
    assert.deepEqual(JSON.parse(text(desc.res)), staticTool);

    const lazy = await call('call_operation', { name: 'create_pet', arguments: { name: 'Bo', age: 3 } }, tree);
    const direct = await call('create_pet', { name: 'Bo', age: 3 });
    assert.equal(lazy.reqs.length, 1);
    assert.deepEqual(wire(lazy.reqs[0]), wire(direct.reqs[0]));
    assert.deepEqual(lazy.res, direct.res);

    const err404 = await call('call_operation', { name: 'get_pet', arguments: { petId: 'missing' } }, tree);
    assert.equal(err404.res.isError, true);
    assert.equal(text(err404.res), `HTTP 404 from 127.0.0.1:${apiPort} (tool get_pet): {"message":"no such pet"}`);
    const echo = await call('call_operation', { name: 'get_pet', arguments: { petId: 'echo' } }, tree);
    assert.ok(text(echo.res).includes('[redacted]'), 'the same secret scrubbing');
  });

  test('hierarchical: unknown category or operation → isError naming it and where to look', async () => {
    const c = await call('list_operations', { category: 'cats' }, tree);
    assert.equal(c.res.isError, true);
    assert.equal(text(c.res), 'unknown category "cats"; call list_categories for the categories');
    const o = await call('call_operation', { name: 'get_cat', arguments: {} }, tree);
    assert.equal(o.res.isError, true);
    assert.match(text(o.res), /^unknown operation "get_cat"; call list_operations .*list_categories/);
    assert.equal(o.reqs.length, 0);
    const bad = await call('call_operation', { name: 'get_pet', arguments: { nope: 1 } }, tree);
    assert.match(text(bad.res), /^invalid arguments for tool get_pet: .*nope/);
  });

  test('search: find an operation, then call it; the request exactly the static one', async () => {
    const found = await call('search_operations', { query: 'delete a pet', limit: 3 }, find);
    const defs = JSON.parse(text(found.res));
    assert.ok(defs.length >= 1 && defs.length <= 3, text(found.res));
    assert.equal(defs[0].name, 'delete_pet');
    assert.deepEqual(defs[0], (await list(s)).find((t) => t.name === 'delete_pet'));
    const lazy = await call('call_operation', { name: defs[0].name, arguments: { petId: '9' } }, find);
    const direct = await call('delete_pet', { petId: '9' });
    assert.deepEqual(wire(lazy.reqs[0]), wire(direct.reqs[0]));
    assert.equal(lazy.reqs[0].url, '/v1/pets/9');
    assert.deepEqual(lazy.res, direct.res);
    const none = await call('search_operations', { query: 'zebra' }, find);
    assert.equal(text(none.res), 'no operation matches "zebra"; try other keywords');
    const o = await call('call_operation', { name: 'get_cat' }, find);
    assert.equal(text(o.res), 'unknown operation "get_cat"; call search_operations to find its name');
  });
});

describe('openapi transport: errors', () => {
  test('404 → isError with the status and the body', async () => {
    const { res } = await call('get_pet', { petId: 'missing' });
    assert.equal(res.isError, true);
    assert.equal(res.content[0].text, `HTTP 404 from 127.0.0.1:${apiPort} (tool get_pet): {"message":"no such pet"}`);
  });

  test('invalid arguments → isError naming the argument, nothing sent', async () => {
    const { res, reqs } = await call('get_pet', { nope: 1 });
    assert.equal(reqs.length, 0);
    assert.equal(res.isError, true);
    assert.match(res.content[0].text, /^invalid arguments for tool get_pet: .*nope/);
    const missing = await call('get_pet', {});
    assert.match(missing.res.content[0].text, /petId/);
  });

  test('unknown tool → JSON-RPC -32602', async () => {
    const r = await s.callTool('no_such_tool', {});
    assert.equal(r.json.error.code, -32602, r.text);
  });

  test('refused connection → isError naming the host', async () => {
    const d = await openSession(`${gw.base}/mcp/deadapi`);
    const { res } = await call('list_pets', {}, d);
    assert.equal(res.isError, true);
    assert.match(res.content[0].text, new RegExp(`^could not reach 127\\.0\\.0\\.1:${closedPort} \\(tool list_pets\\): .*(refused|connect)`, 'i'));
  });

  test('the configured key never shows: echoed headers and error bodies are scrubbed', async () => {
    const echo = await call('get_pet', { petId: 'echo' });
    const text = echo.res.content[0].text;
    assert.ok(text.includes('[redacted]'), text);
    assert.equal(echo.res.structuredContent, undefined, 'redacted answers carry no structuredContent');
    const boom = await call('get_pet', { petId: 'boom' });
    assert.equal(boom.res.isError, true);
    assert.match(boom.res.content[0].text, /^HTTP 500 from .*internal, key was \[redacted\]/);
    for (const t of responses) assert.ok(!t.includes(SECRET), `secret in a response: ${t.slice(0, 300)}`);
    assert.ok(!gw.logText().includes(SECRET), 'secret in the gateway log');
    assert.ok(!gw.stdout.includes(SECRET), 'secret on stdout');
  });
});

describe('gatehouse openapi inspect', () => {
  test('prints the catalog; --json for programs; errors name the pointer', async () => {
    const r = await runGatehouse(['openapi', 'inspect', SPEC]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Gateway Pets 2\.1 \(openapi 3\.0\.3\), 6 operations/);
    assert.match(r.stdout, /list_pets\s+\d+\s+List pets\./);
    const j = await runGatehouse(['openapi', 'inspect', SPEC, '--json']);
    assert.equal(j.code, 0, j.stderr);
    const d = JSON.parse(j.stdout);
    assert.equal(d.tools.length, 6);
    assert.equal(d.naive.tools.length, 6);
    assert.equal(typeof d.tools[0].tokens, 'number');
    assert.equal(d.tools.find((x) => x.name === 'list_pets').operation, 'GET /pets');
    const bad = await runGatehouse(['openapi', 'inspect', BROKEN, '--json']);
    assert.equal(bad.code, 1);
    assert.equal(JSON.parse(bad.stdout).where, '/paths/~1a/get/responses/200/content/application~1json/schema/$ref');
    const usage = await runGatehouse(['openapi', 'inspect']);
    assert.equal(usage.code, 2);
    assert.match(r.stdout, /hierarchical: +4 tools, \d+ tokens to start/);
    const tree = await runGatehouse(['openapi', 'inspect', SPEC, '--discovery', 'hierarchical']);
    assert.equal(tree.code, 0, tree.stderr);
    const t = JSON.parse(tree.stdout);
    assert.equal(t.mode, 'hierarchical');
    assert.deepEqual(t.tools.map((x) => x.name), ['list_categories', 'list_operations', 'describe_operation', 'call_operation']);
    const flat = JSON.parse((await runGatehouse(['openapi', 'inspect', SPEC, '--discovery', 'static'])).stdout);
    assert.deepEqual(flat.tools, d.tools.map(({ tokens, operation, ...tool }) => tool));
    const ov = JSON.parse((await runGatehouse(['openapi', 'inspect', SPEC, '--overlay', OVERLAY, '--json'])).stdout);
    assert.equal(ov.tools.length, 5);
    assert.equal(ov.warnings.length, 1);
    assert.match(ov.warnings[0], /action 3 \(target \$\.paths\['\/kennels'\]/);
    const bogus = await runGatehouse(['openapi', 'inspect', SPEC, '--discovery', 'lazy']);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /unknown discovery mode "lazy"; expected static, hierarchical or search/);
  });
});
