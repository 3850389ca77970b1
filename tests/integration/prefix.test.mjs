// Prefix modes with two stdio servers that expose the same tool names.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baseConfig, miniServer, openSession, runGatehouse, startGateway, writeConfig } from './lib.mjs';

const servers = () => [miniServer('a', { extra: 'only_a' }), miniServer('b', { extra: 'only_b' })];
const SHARED = ['tool', 'sleep', 'hang', 'die'];

async function toolNames(mode, t) {
  const gw = await startGateway(baseConfig({ prefix: { mode }, servers: servers() }), { t });
  try {
    const s = await openSession(gw.url);
    const r = await s.rpc('tools/list');
    assert.ok(r.json?.result?.tools, r.text);
    const names = r.json.result.tools.map((x) => x.name).sort();
    const calls = {};
    for (const n of names.filter((x) => /tool$|only_/.test(x))) {
      const c = await s.callTool(n, { text: n });
      calls[n] = c.json?.result?.content?.[0]?.text ?? c.text;
    }
    return { names, calls };
  } finally {
    await gw.stop();
  }
}

test('when-needed: only the shared names are prefixed, each routed to its server', async (t) => {
  const { names, calls } = await toolNames('when-needed', t);
  const expected = [...SHARED.flatMap((n) => [`a__${n}`, `b__${n}`]), 'only_a', 'only_b'].sort();
  assert.deepEqual(names, expected);
  assert.equal(calls.a__tool, 'a:a__tool');
  assert.equal(calls.b__tool, 'b:b__tool');
  assert.equal(calls.only_a, 'a:extra');
  assert.equal(calls.only_b, 'b:extra');
});

test('always: every name is prefixed', async (t) => {
  const { names, calls } = await toolNames('always', t);
  const expected = [...SHARED, 'only_a'].map((n) => `a__${n}`).concat([...SHARED, 'only_b'].map((n) => `b__${n}`)).sort();
  assert.deepEqual(names, expected);
  assert.equal(calls.a__only_a, 'a:extra');
  assert.equal(calls.b__tool, 'b:b__tool');
});

test('always with a custom separator', async (t) => {
  const gw = await startGateway(baseConfig({ prefix: { mode: 'always', separator: '.' }, servers: servers() }), { t });
  try {
    const s = await openSession(gw.url);
    const r = await s.rpc('tools/list');
    const names = r.json.result.tools.map((x) => x.name);
    assert.ok(names.includes('a.tool') && names.includes('b.only_b'), `${names}`);
    const c = await s.callTool('b.tool', { text: 'dot' });
    assert.equal(c.json?.result?.content?.[0]?.text, 'b:dot', c.text);
  } finally {
    await gw.stop();
  }
});

test('never: a collision refuses start-up, naming both servers, exit non-zero', async () => {
  const file = writeConfig(baseConfig({ prefix: { mode: 'never' }, servers: servers() }));
  const r = await runGatehouse(['run', '-c', file], { timeout: 20000 });
  assert.equal(r.signal, null, `killed by ${r.signal}`);
  assert.notEqual(r.code, 0, `exit code ${r.code}\n${r.stderr}`);
  assert.ok(!/"event":"listening"/.test(r.stderr), 'it listened anyway');
  const msg = r.stderr.split('\n').find((l) => /server "a"/.test(l) && /server "b"/.test(l) && /never/.test(l));
  assert.ok(msg, `no message naming both servers:\n${r.stderr}`);
  assert.match(msg, /"tool"|"sleep"|"hang"|"die"/);
});

test('never on one server only, when-needed globally: that server keeps its bare names', async (t) => {
  const [a, b] = servers();
  const gw = await startGateway(baseConfig({ servers: [{ ...a, prefix: 'never' }, { ...b, extra: undefined, args: b.args.slice(0, 3) }] }), { t }).catch((e) => ({ startError: e }));
  if (gw.startError) {
    // refusing is also a defensible reading of the docs; it must then name both servers
    assert.match(gw.startError.message, /"a"[\s\S]*"b"|"b"[\s\S]*"a"/);
    return;
  }
  try {
    const s = await openSession(gw.url);
    const names = (await s.rpc('tools/list')).json.result.tools.map((x) => x.name).sort();
    assert.ok(names.includes('tool'), `a's bare name missing: ${names}`);
    assert.ok(names.includes('b__tool'), `b's prefixed name missing: ${names}`);
    const c = await s.callTool('tool', { text: 'bare' });
    assert.equal(c.json?.result?.content?.[0]?.text, 'a:bare', c.text);
  } finally {
    await gw.stop();
  }
});
