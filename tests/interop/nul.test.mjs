// U+0000 in a tool argument, through the gateway to server-everything's `echo` and back, over
// stdio and over Streamable HTTP, with the official SDK client. JSON allows "\u0000" in strings;
// the gateway passes it both ways and the call is answered at once (it used to hang until
// timeouts.total: the server's answer was dropped as unreadable).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connectClient, resultText } from './lib/client.mjs';
import { everythingStdio, gatewayBinaryOrThrow, httpUpstream, startEverythingHttp, startGateway } from './lib/gateway.mjs';

let everything;
let gateway;
const clients = [];

before(async () => {
  gatewayBinaryOrThrow();
  everything = await startEverythingHttp();
  gateway = await startGateway({
    prefix: { mode: 'always' },
    servers: [everythingStdio('stdio', { timeouts: { total: '60s' } }), httpUpstream('http', everything.url, { timeouts: { total: '60s' } })],
  });
});

after(async () => {
  for (const c of clients) await c.close();
  await gateway?.stop();
  await everything?.stop();
});

for (const server of ['stdio', 'http']) {
  test(`${server}: a NUL in echo's argument round-trips at once`, { timeout: 30000 }, async () => {
    const c = await connectClient(gateway.url);
    clients.push(c);
    const t0 = Date.now();
    const r = await c.client.callTool({ name: `${server}__echo`, arguments: { message: 'a\u0000b' } });
    const ms = Date.now() - t0;
    assert.equal(r.isError, undefined, JSON.stringify(r));
    assert.equal(resultText(r), 'Echo: a\u0000b');
    assert.ok(ms < 5000, `answered after ${ms} ms`);
    assert.doesNotMatch(gateway.logs(), /upstream_bad_message/);
  });
}
