// validate_arguments: a tools/call to such a server is checked against the inputSchema the server
// published in its tools/list, and a wrong one is refused (-32602, naming the argument and the
// rule) without ever reaching the server. Against the mini fixture, which logs every tools/call
// it receives (--schema-tools), and against the reference server over stdio.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO, assertRpcError, baseConfig, miniServer, openSession, readyz, startGateway, until } from './lib.mjs';

const schemaServer = (name, extra = {}) => {
  const s = miniServer(name, extra);
  s.args.push('--schema-tools');
  return s;
};

/** tools/call lines the server `name` logged (what reached it), from the gateway's log. */
const received = (gw, name) =>
  gw.lines.filter((l) => l.includes(`"server":"${name}"`) && l.includes('mini-server: request tools/call'));

test('a checked server never receives a call its schema refuses; an unchecked one does', async (t) => {
  const gw = await startGateway(
    baseConfig({ servers: [schemaServer('checked', { validate_arguments: true }), schemaServer('open')] }),
    { t },
  );
  const s = await openSession(gw.url);

  // wrong type, missing required, not an object at all: refused, each naming the field and rule
  let r = await s.callTool('checked__sum', { a: '1', b: 2 }, { id: 'wrong-type' });
  assertRpcError(r, { status: 200, code: -32602, id: 'wrong-type', message: /argument 'a' of tool 'checked__sum' must be a number, not a string/ });
  r = await s.callTool('checked__sum', { a: 1, b: { n: 2 } });
  assertRpcError(r, { code: -32602, message: /argument 'b' of tool 'checked__sum' must be a number, not an object/ });
  r = await s.callTool('checked__sum', { a: 1 });
  assertRpcError(r, { code: -32602, message: /missing required argument 'b' for tool 'checked__sum'/ });
  r = await s.rpc('tools/call', { name: 'checked__sum' });
  assertRpcError(r, { code: -32602, message: /missing required argument 'a' for tool 'checked__sum'/ });

  // a valid call passes, unchanged
  r = await s.callTool('checked__sum', { a: 1, b: 2.5 });
  assert.equal(r.json?.result?.content?.[0]?.text, '3.5', r.text);
  // a malformed schema refuses nothing
  r = await s.callTool('checked__broken', { a: 'anything', z: [1] });
  assert.equal(r.json?.result?.content?.[0]?.text, 'broken ok', r.text);
  r = await s.callTool('checked__broken', {});
  assert.equal(r.json?.result?.content?.[0]?.text, 'broken ok', r.text);

  // the same wrong call to the server without validate_arguments is sent as given
  r = await s.callTool('open__sum', { a: '1', b: 2 });
  assert.equal(r.json?.result?.content?.[0]?.text, '12', r.text); // the server's own "1" + 2

  // What reached the checked server: the valid calls only. Its stderr comes through its own pipe,
  // in order: once the lines of the valid calls are there, those of the refused ones (sent
  // before them) would be too.
  await until(() => received(gw, 'checked').length >= 3 && received(gw, 'open').length >= 1, { what: `tools/call lines\n${gw.tail()}` });
  const got = received(gw, 'checked');
  assert.equal(got.length, 3, got.join('\n'));
  assert.ok(got[0].includes('{\\"a\\":1,\\"b\\":2.5}'), got[0]);
  assert.ok(got.slice(1).every((l) => l.includes('broken')), got.join('\n'));
  assert.equal(received(gw, 'open').length, 1);
  await gw.stop();
});

test('SIGHUP turning validate_arguments on applies it to the next call', async (t) => {
  const cfg = (on) => baseConfig({ servers: [schemaServer('m', on ? { validate_arguments: true } : {})] });
  const gw = await startGateway(cfg(false), { t });
  let s = await openSession(gw.url);
  let r = await s.callTool('sum', { a: '1', b: 2 });
  assert.equal(r.json?.result?.content?.[0]?.text, '12', r.text); // off: sent as given

  fs.writeFileSync(gw.configFile, JSON.stringify(cfg(true), null, 2));
  const mark = gw.events.length;
  gw.signal('SIGHUP');
  const done = await gw.waitForEvent((e) => e.event === 'reload_servers', { from: mark, what: 'the reload of the servers' });
  assert.match(done.msg, /1 started, 1 stopped/); // a changed entry is a restarted server
  await until(async () => (await readyz(gw)).status === 200, { timeout: 10000, what: 'ready after the reload' });
  s = await openSession(gw.url);
  r = await s.callTool('sum', { a: '1', b: 2 });
  assertRpcError(r, { code: -32602, message: /argument 'a' of tool 'sum' must be a number, not a string/ });
  await gw.stop();
});

const everything = path.join(REPO, 'tests/interop/node_modules/.bin/mcp-server-everything');
test(
  'the reference server: get-sum given a string is refused naming the field, valid calls pass',
  { skip: !fs.existsSync(everything) && 'tests/interop/node_modules not installed' },
  async (t) => {
    const gw = await startGateway(
      { ...baseConfig(), servers: [{ name: 'everything', command: everything, args: ['stdio'], validate_arguments: true }] },
      { t, timeout: 30000 },
    );
    const s = await openSession(gw.url);
    const list = await s.rpc('tools/list');
    const sum = list.json?.result?.tools?.find((x) => x.name === 'get-sum');
    assert.ok(sum, `get-sum listed: ${list.text.slice(0, 300)}`);
    assert.equal(sum.inputSchema?.properties?.a?.type, 'number');

    let r = await s.callTool('get-sum', { a: 'one', b: 2 }, { id: 7 });
    assertRpcError(r, { code: -32602, id: 7, message: /argument 'a' of tool 'get-sum' must be a number, not a string/ });
    r = await s.callTool('get-sum', { a: 1 });
    assertRpcError(r, { code: -32602, message: /missing required argument 'b' for tool 'get-sum'/ });
    r = await s.callTool('get-sum', { a: 2, b: 40 });
    assert.match(r.json?.result?.content?.[0]?.text ?? r.text, /42/);
    assert.equal(r.json?.result?.isError, undefined, r.text);
    await gw.stop();
  },
);
