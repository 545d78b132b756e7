// One cell of the cross-era matrix with the TypeScript SDK v2 client,
// pinned to MCP 2026-07-28 (no fallback to initialize). Run by
// test/eras (tsclient_test.go):
//
//   node client.mjs CONFIG_JSON
//
// CONFIG_JSON: {url, token, tenant, region, echoArgs, era, prefix, tools: {echo, progress,
// sample, elicit, addtool, touch, block, watched, touchesItself},
// callTimeoutMs, notifyWaitMs}. The SDK comes from MCPGATE_TEST_TS_SDK2.
//
// It prints one JSON object a line: {"feature", "status", "reason"} for
// every feature but cancellation, then {"ready": true}; it then reads
// commands a line from stdin: {"cmd":"block","region"} starts the block
// call (printing {"blockEnded": region, "error"} once it settles),
// {"cmd":"cancel"} aborts it, {"cmd":"end"} ends the script.
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const sdk2 = process.env.MCPGATE_TEST_TS_SDK2;
const { Client, StreamableHTTPClientTransport } = await import(
  pathToFileURL(path.join(sdk2, 'node_modules/@modelcontextprotocol/client/dist/index.mjs')).href
);

const cfg = JSON.parse(process.argv[2]);
const tools = cfg.tools;
const sampledText = 'eras-sampled';
const elicitedName = 'eras-name';

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const oneLine = (e) => String(e && e.message ? e.message : e).replace(/\s+/g, ' ').slice(0, 300);
const outcome = (feature, status, reason = '') => emit({ feature, status, reason });

// waiter: a promise resolved by the first call of its resolve, or false
// after ms.
function waiter() {
  let resolve;
  const p = new Promise((r) => (resolve = r));
  return { resolve: () => resolve(true), wait: (ms) => Promise.race([p, new Promise((r) => setTimeout(() => r(false), ms))]) };
}

const client = new Client(
  { name: 'eras-ts-client', version: '2.4.0' },
  {
    capabilities: { sampling: {}, elicitation: { form: {} } },
    versionNegotiation: { mode: { pin: cfg.era } },
  },
);
client.setRequestHandler('sampling/createMessage', async () => ({
  role: 'assistant',
  model: 'eras',
  content: { type: 'text', text: sampledText },
}));
client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { name: elicitedName } }));
let listChanged = waiter();
client.setNotificationHandler('notifications/tools/list_changed', () => listChanged.resolve());
let updated = waiter();
client.setNotificationHandler('notifications/resources/updated', (n) => {
  if (n.params && n.params.uri === tools.watched) updated.resolve();
});

const transport = new StreamableHTTPClientTransport(new URL(cfg.url), {
  requestInit: { headers: { Authorization: `Bearer ${cfg.token}`, 'X-Tenant-Id': cfg.tenant } },
});
const opts = { timeout: cfg.callTimeoutMs };
const features = ['era', 'call', 'progress', 'sampling', 'elicitation', 'list_changed', 'subscription', 'cancellation'];

async function call(name, args, extra = {}) {
  const res = await client.callTool({ name: cfg.prefix + name, arguments: args }, { ...opts, ...extra });
  const text = (res.content || []).filter((c) => c.type === 'text').map((c) => c.text).join(' ');
  if (res.isError) throw new Error(`tool error: ${text}`);
  return text;
}

async function answerContains(feature, name, want) {
  try {
    const got = await call(name, {});
    if (got.includes(want)) outcome(feature, 'pass');
    else outcome(feature, 'fail', `tools/call ${name} answered ${JSON.stringify(got)}, without the client's ${JSON.stringify(want)}`);
  } catch (e) {
    outcome(feature, 'fail', `tools/call ${name}: ${oneLine(e)}`);
  }
}

try {
  await client.connect(transport, { timeout: cfg.callTimeoutMs });
} catch (e) {
  for (const f of features) outcome(f, 'fail', `connect (pinned to ${cfg.era}): ${oneLine(e)}`);
  emit({ ready: false });
  process.exit(0);
}

const negotiated = client.getNegotiatedProtocolVersion();
if (negotiated === cfg.era) outcome('era', 'pass');
else outcome('era', 'fail', `mcpgate negotiated ${negotiated} with a client pinned to ${cfg.era}`);

// tools/list first: the client mirrors x-mcp-header arguments into
// Mcp-Param-* from the listed tool's schema.
try {
  await client.listTools(undefined, opts);
  const got = await call(tools.echo, cfg.echoArgs);
  if (got.includes(cfg.region)) outcome('call', 'pass'); // the Go side checks the upstream's headers
  else outcome('call', 'fail', `tools/call ${tools.echo} answered ${JSON.stringify(got)}, without the region ${cfg.region}`);
} catch (e) {
  outcome('call', 'fail', `tools/call ${tools.echo}: ${oneLine(e)}`);
}

try {
  let n = 0;
  const done = waiter();
  const got = await call(tools.progress, {}, { onprogress: () => { if (++n >= 3) done.resolve(); } });
  if (await done.wait(cfg.notifyWaitMs)) outcome('progress', 'pass');
  else outcome('progress', 'fail', `${n} of 3 progress notifications reached the client within ${cfg.notifyWaitMs} ms (the call answered ${JSON.stringify(got)})`);
} catch (e) {
  outcome('progress', 'fail', `tools/call ${tools.progress}: ${oneLine(e)}`);
}

await answerContains('sampling', tools.sample, sampledText);
await answerContains('elicitation', tools.elicit, elicitedName);

try {
  const sub = await client.listen({ toolsListChanged: true }, opts);
  listChanged = waiter();
  await call(tools.addtool, {});
  if (await listChanged.wait(cfg.notifyWaitMs)) outcome('list_changed', 'pass');
  else outcome('list_changed', 'fail', `no notifications/tools/list_changed reached the client within ${cfg.notifyWaitMs} ms of the upstream's change (subscriptions/listen honoured ${JSON.stringify(sub.honoredFilter)})`);
  await sub.close();
} catch (e) {
  outcome('list_changed', 'fail', `subscriptions/listen or tools/call ${tools.addtool}: ${oneLine(e)}`);
}

try {
  const sub = await client.listen({ resourceSubscriptions: [tools.watched] }, opts);
  updated = waiter();
  if (!tools.touchesItself) await call(tools.touch, {});
  if (await updated.wait(cfg.notifyWaitMs)) outcome('subscription', 'pass');
  else outcome('subscription', 'fail', `no notifications/resources/updated for ${tools.watched} reached the client within ${cfg.notifyWaitMs} ms (subscriptions/listen honoured ${JSON.stringify(sub.honoredFilter)})`);
  await sub.close();
} catch (e) {
  outcome('subscription', 'fail', `subscriptions/listen ${tools.watched}: ${oneLine(e)}`);
}

emit({ ready: true });
let abort = null;
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'block') {
    const ac = new AbortController();
    abort = ac;
    // The tools changed since the first tools/list (addtool): list them
    // again for the x-mcp-header mirroring.
    client
      .listTools(undefined, { ...opts, cacheMode: 'refresh' })
      .then(() => call(tools.block, { region: cmd.region }, { signal: ac.signal }))
      .then(
      () => emit({ blockEnded: cmd.region, error: '' }),
      (e) => emit({ blockEnded: cmd.region, error: ac.signal.aborted ? '' : oneLine(e) }),
    );
  } else if (cmd.cmd === 'cancel') {
    if (abort) abort.abort();
  } else if (cmd.cmd === 'end') {
    break;
  }
}
await client.close().catch(() => {});
process.exit(0);
