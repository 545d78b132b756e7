// A real MCP client that performs the MCP authorization flow: the
// TypeScript SDK's Client over Streamable HTTP (or legacy SSE) with its client-credentials
// OAuth provider (client/auth-extensions). It connects to URL without a
// token; on the 401 the SDK reads WWW-Authenticate's resource_metadata,
// fetches the protected-resource metadata, discovers the authorization
// server it names, gets a token there for the metadata's resource (RFC 8707)
// and retries. Then it lists the tools and calls TOOL.
//
// Usage: node client.mjs CONFIG.json   (Node 22 or later)
// CONFIG: {"sdk": ".../@modelcontextprotocol/sdk", "url": "http://127.0.0.1:P/mcp",
//          "transport": "streamable" (the default) or "sse" (legacy HTTP+SSE),
//          "client_id": "...", "client_secret": "...", "scope": "...", "tool": "...", "arguments": {...}}
//
// It prints one JSON line: {"ok": true, "tools": [...], "result": ..., "token": {claims}}
// or {"ok": false, "error": "..."}, and exits 0 either way (1 when it could
// not run at all).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const sdk = async (p) => import(pathToFileURL(`${config.sdk}/dist/esm/${p}`).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { SSEClientTransport } = await sdk("client/sse.js");
const { ClientCredentialsProvider } = await sdk("client/auth-extensions.js");

const provider = new ClientCredentialsProvider({
  clientId: config.client_id,
  clientSecret: config.client_secret,
  clientName: "mcpgate identity test",
  // The SDK's client-credentials provider asks for the scope it is
  // configured with (1.32: not the challenge's), as such clients are set up.
  scope: config.scope,
});
// Record the HTTP exchanges, to show the flow's steps to the Go test.
const seen = [];
const recordingFetch = async (url, init) => {
  const res = await fetch(url, init);
  seen.push(`${init?.method ?? "GET"} ${url} ${res.status}`);
  if (res.status >= 400) console.error(`${res.status} ${url}: WWW-Authenticate ${res.headers.get("www-authenticate")}; ${(await res.clone().text()).slice(0, 500)}`);
  return res;
};
const Transport = config.transport === "sse" ? SSEClientTransport : StreamableHTTPClientTransport;
const transport = new Transport(new URL(config.url), { authProvider: provider, fetch: recordingFetch });
const client = new Client({ name: "mcpgate-identity-test", version: "1.0.0" });
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());
try {
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const result = await client.callTool({ name: config.tool, arguments: config.arguments ?? {} });
  const token = provider.tokens()?.access_token;
  console.log(JSON.stringify({ ok: true, tools, result, token: token ? claims(token) : null, raw_token: token, seen }));
  await client.close();
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e), seen }));
}
