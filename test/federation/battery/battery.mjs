// The comparison battery: a TypeScript-SDK client (@modelcontextprotocol/sdk)
// that exercises everything a server offers — every tool, resource, resource
// template, prompt and completion it lists, logging, subscriptions, tasks,
// cancellation, and the server-to-client requests (sampling, elicitation,
// roots) — once directly against the server and once through each of
// mcpgate's federated front doors, and compares the answers modulo the name
// prefix and volatile fields.
//
// Usage: node battery.mjs CONFIG.json   (Node 22 or later)
//
// CONFIG: {
//   "sdk":   "/path/node_modules/@modelcontextprotocol/sdk",
//   "token": "a bearer token for mcpgate",
//   "pairs": [{"name": "...",
//              "direct":  {"kind": "streamable"|"sse", "url": "..."},
//              "through": {"kind": "streamable"|"sse"|"ws", "url": "...", "prefix": "slug-"}}]
// }
//
// It prints one line per difference ("DIFF pair check: direct … through …"),
// then "N identical, M different" as its last line, and exits 0 when it ran
// (whatever M is; the Go test decides), 1 when it could not run.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const sdk = async (p) => import(pathToFileURL(`${config.sdk}/dist/esm/${p}`).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { SSEClientTransport } = await sdk("client/sse.js");
const { WebSocketClientTransport } = await sdk("client/websocket.js");
const types = await sdk("types.js");

const WAIT_MS = 12000; // bound on every wait for a notification (server-everything ticks every 5 s)
const auth = { Authorization: `Bearer ${config.token}` };

// The SDK's WebSocket transport cannot send headers; mcpgate also takes the
// token as a second subprotocol (docs/security.md).
const NativeWebSocket = globalThis.WebSocket;
class TokenWebSocket extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, [].concat(protocols ?? [], `bearer.${config.token}`));
  }
}
globalThis.WebSocket = TokenWebSocket;

function transportFor(t) {
  const url = new URL(t.url);
  switch (t.kind) {
    case "streamable":
      return new StreamableHTTPClientTransport(url, { requestInit: { headers: auth } });
    case "sse":
      return new SSEClientTransport(url, {
        requestInit: { headers: auth },
        eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers ?? {}), ...auth } }) },
      });
    case "ws":
      return new WebSocketClientTransport(url);
    default:
      throw new Error(`unknown transport kind ${t.kind}`);
  }
}

// A value for each property of an elicitation's requested schema, chosen by
// type and format only, so that both runs answer the same.
function elicitAnswer(schema) {
  const content = {};
  for (const [k, p] of Object.entries(schema?.properties ?? {})) {
    if (p.enum) content[k] = p.enum[0];
    else if (p.oneOf) content[k] = p.oneOf[0].const;
    else if (p.type === "array") content[k] = p.items?.enum ? [p.items.enum[0]] : p.items?.anyOf ? [p.items.anyOf[0].const] : [];
    else if (p.type === "boolean") content[k] = true;
    else if (p.type === "number" || p.type === "integer") content[k] = p.minimum ?? 1;
    else if (p.format === "email") content[k] = "battery@example.com";
    else if (p.format === "uri") content[k] = "https://example.com/battery";
    else if (p.format === "date") content[k] = "2026-01-02";
    else if (p.format === "date-time") content[k] = "2026-01-02T03:04:05Z";
    else content[k] = "battery";
  }
  return content;
}

// connect opens a client with sampling, elicitation (form and URL) and
// roots, whose handlers answer deterministically, and records what the
// server sends it.
async function connect(target, name) {
  const seen = { log: [], updated: [], requests: [] };
  const client = new Client(
    { name: `battery-${name}`, version: "1" },
    { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } } },
  );
  let roots = [{ uri: "file:///battery/one", name: "battery-one" }];
  client.setRequestHandler(types.CreateMessageRequestSchema, async (req) => {
    seen.requests.push("sampling/createMessage");
    const last = req.params.messages.at(-1)?.content;
    return { model: "battery-model", role: "assistant", stopReason: "endTurn", content: { type: "text", text: `sampled: ${last?.text ?? ""}` } };
  });
  client.setRequestHandler(types.ElicitRequestSchema, async (req) => {
    seen.requests.push(`elicitation/create ${req.params.mode ?? "form"}`);
    if (req.params.mode === "url") return { action: "accept" };
    return { action: "accept", content: elicitAnswer(req.params.requestedSchema) };
  });
  client.setRequestHandler(types.ListRootsRequestSchema, async () => {
    seen.requests.push("roots/list");
    return { roots };
  });
  client.setNotificationHandler(types.LoggingMessageNotificationSchema, (n) => seen.log.push(n.params));
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => seen.updated.push(n.params.uri));
  client.onerror = () => {}; // transport noise (a closed stream) is not an answer
  await client.connect(transportFor(target));
  return {
    client, seen,
    setRoots: async (r) => { roots = r; await client.sendRootsListChanged(); },
  };
}

// --- normalisation -----------------------------------------------------------

const VOLATILE_KEYS = new Set(["timestamp", "createdAt", "lastUpdatedAt", "taskId", "requestId", "elicitationId", "sessionId", "ttl", "pollInterval"]);
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?/g;
const CLOCK = /\b\d{1,2}:\d\d:\d\d( ?[AP]M)?/g; // server-everything's toLocaleTimeString()
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

// normalise strips the prefix from names (and from mentions of known
// names), maps the gateway's URIs back to the server's, and blanks
// volatile fields.
function normalise(v, ctx) {
  if (Array.isArray(v)) return v.map((x) => normalise(x, ctx));
  if (v && typeof v === "object") {
    const out = {};
    // A text blob (server-everything's dynamic blobs carry a time) is
    // compared as its normalised text.
    if (typeof v.blob === "string" && /^text\//.test(v.mimeType ?? "")) {
      v = { ...v, blob: undefined, blobText: Buffer.from(v.blob, "base64").toString("utf8") };
    }
    for (const k of Object.keys(v).sort()) {
      if (v[k] === undefined) continue;
      if (k === "_meta") continue; // per-hop metadata (related task, progress) is not content
      if (VOLATILE_KEYS.has(k)) { out[k] = "<volatile>"; continue; }
      out[k] = normalise(v[k], ctx);
    }
    return out;
  }
  if (typeof v === "string") {
    // mcpgate lists a URI another upstream also lists as
    // mcpgate://<slug>/<the upstream's URI> (docs/federation.md): a name
    // prefix, as the tools' are.
    let s = ctx.uris?.get(v) ?? v.replace(/^mcpgate:\/\/[a-z0-9-]+\//, "");
    if (ctx.prefix) for (const n of ctx.names) s = s.split(ctx.prefix + n).join(n);
    return s.replace(ISO, "<time>").replace(CLOCK, "<time>").replace(UUID, "<uuid>");
  }
  return v;
}

// --- the checks --------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, ms = WAIT_MS) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (cond()) return true;
  return cond();
}
async function answer(f) {
  try { return { ok: await f() }; } catch (e) { return { error: { code: e.code ?? null, message: String(e.message ?? e) } }; }
}

const TOOL_ARGS = {
  "echo": { message: "hello battery" },
  "get-annotated-message": { messageType: "success", includeImage: true },
  "get-resource-links": { count: 4 },
  "get-resource-reference": { resourceType: "text", resourceId: 3 },
  "get-structured-content": { location: "New York" },
  "get-sum": { a: 2, b: 40 },
  "gzip-file-as-resource": { name: "battery.txt.gz", data: "data:text/plain;base64,YmF0dGVyeQ==", outputType: "resourceLink" },
  "trigger-long-running-operation": { duration: 1, steps: 2 },
  "trigger-sampling-request": { prompt: "say hi", maxTokens: 20 },
  "trigger-url-elicitation": { url: "https://example.com/battery", message: "open it", elicitationId: "battery-elicitation" },
  "simulate-research-query": { topic: "battery", ambiguous: false },
};
// Tools exercised by their own check (state toggles, tasks), not by a plain call.
const OWN_CHECK = new Set(["toggle-simulated-logging", "toggle-subscriber-updates", "simulate-research-query", "trigger-sampling-request-async", "trigger-elicitation-request-async"]);
const PROMPT_ARGS = {
  "args-prompt": { city: "Paris", state: "Texas" },
  "completable-prompt": { department: "Engineering", name: "Alice" },
  "resource-prompt": { resourceType: "Text", resourceId: "2" },
};

// run exercises one server (direct: prefix "") and returns check name →
// normalised answer. directNames (the server's own names) lets a gateway run
// find its items among everything /mcp lists.
async function run(target, label, directLists) {
  const P = target.prefix ?? "";
  const results = new Map();
  const { client, seen, setRoots } = await connect(target, label);
  const ctx = { prefix: P, names: [], uris: new Map() };
  const put = (k, v) => results.set(k, v);

  // Conditional tools (roots, sampling, elicitation) appear once the server
  // has seen notifications/initialized: wait, boundedly, for one of them.
  let tools = [];
  for (const end = Date.now() + 3000; ; await sleep(100)) {
    tools = (await client.listTools()).tools;
    if (tools.some((t) => t.name === P + "get-roots-list") || Date.now() > end) break;
  }
  const mine = (items, key = "name") => items.filter((x) => !P || x[key].startsWith(P)).map((x) => ({ ...x, [key]: x[key].slice(P.length) }));
  tools = mine(tools);
  const prompts = mine((await answer(() => client.listPrompts())).ok?.prompts ?? []);
  ctx.names = [...new Set([...tools, ...prompts].map((x) => x.name))].sort((a, b) => b.length - a.length);

  // Resources and templates: the gateway's counterpart of each of the
  // server's items, by URI (as is, or carrying the server's URI inside a
  // rewritten one) and name modulo the prefix.
  const resources = (await answer(() => client.listResources())).ok?.resources ?? [];
  const templates = (await answer(() => client.listResourceTemplates())).ok?.resourceTemplates ?? [];
  const counterpart = (list, key, d) => {
    const c = list.filter((g) => (g[key] === d[key] || g[key].includes(d[key]) || g[key].includes(encodeURIComponent(d[key]))) &&
      (g.name === d.name || g.name === P + d.name || g.name.startsWith(P)));
    return c.find((g) => g.name.startsWith(P) || g[key].includes(P.slice(0, -1))) ?? c[0];
  };
  const resOf = directLists ? directLists.resources.map((d) => [d, counterpart(resources, "uri", d)]) : resources.map((r) => [r, r]);
  const tplOf = directLists ? directLists.templates.map((d) => [d, counterpart(templates, "uriTemplate", d)]) : templates.map((r) => [r, r]);
  for (const [d, g] of resOf) if (g) ctx.uris.set(g.uri, d.uri);
  for (const [d, g] of tplOf) if (g) ctx.uris.set(g.uriTemplate, d.uriTemplate);
  if (directLists) {
    const dupes = resources.filter((r, i) => resources.findIndex((x) => x.uri === r.uri) !== i).map((r) => r.uri);
    put("resources/list: every URI listed once", [...new Set(dupes)].sort());
  }
  const N = (v) => normalise(v, ctx);

  put("initialize: capabilities", N(client.getServerCapabilities()));
  put("tools/list: names", tools.map((t) => t.name).sort());
  for (const t of tools) put(`tools/list: ${t.name}`, N(t));
  put("prompts/list: names", prompts.map((p) => p.name).sort());
  for (const p of prompts) put(`prompts/list: ${p.name}`, N(p));
  put("resources/list: URIs", resOf.map(([d, g]) => (g ? d.uri : `missing ${d.uri}`)).sort());
  put("resources/templates/list: URI templates", tplOf.map(([d, g]) => (g ? d.uriTemplate : `missing ${d.uriTemplate}`)).sort());

  put("ping", N(await answer(() => client.ping())));
  // The server asks for roots right after initialize; it must have got ours.
  // Through mcpgate the client's upstream session opens with the client's
  // first message for that upstream (lists and ping are answered from the
  // catalogue), so the question comes with the first call.
  put("echo before roots", N(await answer(() => client.callTool({ name: P + "echo", arguments: { message: "first" } }))));
  await until(() => seen.requests.includes("roots/list"), 3000);
  put("roots/list asked by the first call's answer", seen.requests.includes("roots/list"));

  for (const t of tools) {
    if (OWN_CHECK.has(t.name)) continue;
    const progress = [];
    const r = await answer(() => client.callTool({ name: P + t.name, arguments: TOOL_ARGS[t.name] ?? {} }, undefined,
      { onprogress: (p) => progress.push(p.progress), timeout: 30000 }));
    put(`tools/call: ${t.name}`, N(r));
    // The last progress may come after the result and be dropped by the
    // SDK; what must hold is that progress arrives, in order.
    if (t.name === "trigger-long-running-operation") put(`tools/call: ${t.name}: progress arrives in order`, progress.length > 0 && progress.every((p, i) => i === 0 || p > progress[i - 1]));
    // Resource links a tool returns are readable, in the session that got them.
    for (const c of r.ok?.content ?? []) {
      if (c.type === "resource_link") put(`resources/read: link ${N(c.uri)} from ${t.name}`, N(await answer(() => client.readResource({ uri: c.uri }))));
    }
  }
  put("tools/call: an unknown tool", N(await answer(() => client.callTool({ name: P + "no-such-tool", arguments: {} }))));

  for (const [d, g] of resOf) if (g) put(`resources/read: ${d.uri}`, N(await answer(() => client.readResource({ uri: g.uri }))));
  for (const [d, g] of tplOf) {
    if (!g) continue;
    const uri = g.uriTemplate.replace(/\{[^}]+\}/g, "1");
    put(`resources/read: ${d.uriTemplate} as 1`, N(await answer(() => client.readResource({ uri }))));
    for (const v of (d.uriTemplate.match(/\{([^}]+)\}/g) ?? []).map((x) => x.slice(1, -1))) {
      put(`completion/complete: ${d.uriTemplate} ${v}`, N(await answer(() => client.complete({ ref: { type: "ref/resource", uri: g.uriTemplate }, argument: { name: v, value: "1" } }))));
    }
  }
  for (const p of prompts) {
    const args = PROMPT_ARGS[p.name] ?? {};
    put(`prompts/get: ${p.name}`, N(await answer(() => client.getPrompt({ name: P + p.name, arguments: args }))));
    for (const a of p.arguments ?? []) {
      const context = a.name === "name" ? { arguments: { department: "Engineering" } } : undefined;
      put(`completion/complete: prompt ${p.name} ${a.name}`, N(await answer(() => client.complete({ ref: { type: "ref/prompt", name: P + p.name }, argument: { name: a.name, value: "" }, context }))));
    }
  }

  // Roots: after notifications/roots/list_changed the server asks again and
  // get-roots-list shows the new list.
  if (tools.some((t) => t.name === "get-roots-list")) {
    const asked = seen.requests.filter((x) => x === "roots/list").length;
    await setRoots([{ uri: "file:///battery/two", name: "battery-two" }]);
    await until(() => seen.requests.filter((x) => x === "roots/list").length > asked, 5000);
    put("roots: list_changed makes the server ask again", seen.requests.filter((x) => x === "roots/list").length > asked);
    // The client's answer to roots/list is still on its way when its
    // handler has run: a request sent at once may overtake it on another
    // connection (directly as through mcpgate, which orders only what has
    // reached it). A round trip first lets the answer arrive.
    await answer(() => client.ping());
    put("roots: get-roots-list after list_changed", N(await answer(() => client.callTool({ name: P + "get-roots-list", arguments: {} }))));
  }
  put("server-to-client requests seen", [...new Set(seen.requests)].sort());

  // Logging: notifications/message arrive at the level the client set
  // (debug: every message passes, so one arrives within a tick), and the
  // level the client then sets is the one the server applies to it.
  // server-everything logs at a random level every 5 s.
  if (tools.some((t) => t.name === "toggle-simulated-logging")) {
    put("logging/setLevel debug", N(await answer(() => client.setLoggingLevel("debug"))));
    seen.log.length = 0;
    put("logging: toggle on", N(await answer(() => client.callTool({ name: P + "toggle-simulated-logging", arguments: {} }))));
    await until(() => seen.log.length > 0);
    put("logging: notifications/message arrived", seen.log.length > 0);
    put("logging/setLevel emergency", N(await answer(() => client.setLoggingLevel("emergency"))));
    seen.log.length = 0;
    await sleep(6000); // one tick of the server's logger: there is no signal for a message not sent
    put("logging: after setLevel emergency, only emergency messages", seen.log.filter((m) => m.level !== "emergency").map((m) => m.level));
    await answer(() => client.callTool({ name: P + "toggle-simulated-logging", arguments: {} }));
  }

  // Subscriptions: resources/updated arrives for the URI subscribed to.
  const sub = resOf.find(([d, g]) => g && d.uri.includes("static"));
  if (sub && tools.some((t) => t.name === "toggle-subscriber-updates")) {
    const [d, g] = sub;
    put("resources/subscribe", N(await answer(() => client.subscribeResource({ uri: g.uri }))));
    seen.updated.length = 0;
    await answer(() => client.callTool({ name: P + "toggle-subscriber-updates", arguments: {} }));
    await until(() => seen.updated.length > 0);
    await answer(() => client.callTool({ name: P + "toggle-subscriber-updates", arguments: {} }));
    put("resources/updated arrived for the subscribed URI", seen.updated.map((u) => N(u)).includes(d.uri));
    put("resources/unsubscribe", N(await answer(() => client.unsubscribeResource({ uri: g.uri }))));
  }

  // Tasks (MCP 2025-11-25): a task-augmented call, its status and result,
  // the task list, and a cancelled task.
  if (tools.some((t) => t.name === "simulate-research-query")) {
    const kinds = [];
    let taskId, final;
    const r = await answer(async () => {
      for await (const m of client.experimental.tasks.callToolStream({ name: P + "simulate-research-query", arguments: TOOL_ARGS["simulate-research-query"] }, undefined, { task: { ttl: 60000 }, timeout: 30000 })) {
        if (!kinds.includes(m.type)) kinds.push(m.type);
        if (m.type === "taskCreated") taskId = m.task.taskId;
        if (m.type === "result") final = m.result;
        if (m.type === "error") throw m.error;
      }
      return final;
    });
    put("tasks: tools/call with a task: messages", kinds);
    put("tasks: tools/call with a task: result", N(r));
    put("tasks/get", N(await answer(async () => (await client.experimental.tasks.getTask(taskId)).status)));
    put("tasks/list has the task", N(await answer(async () => (await client.experimental.tasks.listTasks()).tasks.some((t) => t.taskId === taskId))));
    put("tasks/result", N(await answer(() => client.experimental.tasks.getTaskResult(taskId, types.CallToolResultSchema))));
    // A task that needs input: the server elicits while the task is
    // input_required, and completes with the answer.
    const ambiguousKinds = [];
    const ambiguous = await answer(async () => {
      let final;
      for await (const m of client.experimental.tasks.callToolStream({ name: P + "simulate-research-query", arguments: { topic: "battery", ambiguous: true } }, undefined, { task: { ttl: 60000 }, timeout: 30000 })) {
        if (!ambiguousKinds.includes(m.type)) ambiguousKinds.push(m.type);
        if (m.type === "result") final = m.result;
        if (m.type === "error") throw m.error;
      }
      return final;
    });
    put("tasks: input_required (elicitation in a task): messages", ambiguousKinds);
    put("tasks: input_required (elicitation in a task): result", N(ambiguous));
    const second = await answer(async () => {
      for await (const m of client.experimental.tasks.callToolStream({ name: P + "simulate-research-query", arguments: { topic: "cancel me" } }, undefined, { task: { ttl: 60000 } })) {
        if (m.type === "taskCreated") return m.task.taskId;
      }
    });
    put("tasks/cancel", N(await answer(async () => (await client.experimental.tasks.cancelTask(second.ok)).status)));
    put("tasks/get after cancel", N(await answer(async () => (await client.experimental.tasks.getTask(second.ok)).status)));
  }

  // Cancellation: 16 long calls in flight at once (as many as mcpgate's
  // /sse and /ws handle at once per session), each aborted after its first
  // progress, are rejected, and the session answers the next call at once:
  // a cancelled call must not keep its slot until the upstream is done.
  {
    const inFlight = 16;
    const acs = Array.from({ length: inFlight }, () => new AbortController());
    let progressed = 0;
    const calls = acs.map((ac) => {
      let first = true;
      return answer(() => client.callTool({ name: P + "trigger-long-running-operation", arguments: { duration: 20, steps: 20 } }, undefined,
        { signal: ac.signal, onprogress: () => { if (first) { first = false; progressed++; } }, timeout: 30000 }));
    });
    await until(() => progressed === inFlight);
    for (const ac of acs) ac.abort("battery cancels");
    const rs = await Promise.all(calls);
    put("cancellation: calls in flight, aborted, are rejected", { progressed, rejected: rs.filter((r) => r.error).length });
    const t0 = Date.now();
    put("cancellation: the next call answers", N(await answer(() => client.callTool({ name: P + "echo", arguments: { message: "after cancel" } }))));
    put("cancellation: the next call is not held up", Date.now() - t0 < 5000);
  }

  await client.close();
  return { results, lists: { resources: resOf.map(([d]) => d), templates: tplOf.map(([d]) => d) } };
}

// --- main --------------------------------------------------------------------

let identical = 0, different = 0;
const stable = (v) => JSON.stringify(v);
for (const pair of config.pairs) {
  let direct, through;
  try {
    direct = await run(pair.direct, "direct");
  } catch (e) {
    console.error(`battery: ${pair.name}: directly: ${e.stack ?? e}`);
    process.exit(1);
  }
  try {
    through = await run(pair.through, "through", direct.lists);
  } catch (e) {
    through = { results: new Map([["connect", { error: String(e.message ?? e) }]]) };
  }
  const keys = [...new Set([...direct.results.keys(), ...through.results.keys()])];
  let same = 0;
  for (const k of keys) {
    const d = direct.results.has(k) ? stable(direct.results.get(k)) : "(not run)";
    // Only the gateway can list a URI twice; directly the check is vacuous.
    const dd = k === "resources/list: every URI listed once" ? "[]" : d;
    const t = through.results.has(k) ? stable(through.results.get(k)) : "(not run)";
    if (dd === t) { identical++; same++; continue; }
    different++;
    console.log(`DIFF ${pair.name} | ${k}:\n  direct:  ${dd.slice(0, 600)}\n  through: ${t.slice(0, 600)}`);
  }
  console.log(`pair ${pair.name}: ${same} identical, ${keys.length - same} different`);
}
console.log(`${identical} identical, ${different} different`);
