// The TypeScript SDK v2 upstream of the cross-era matrix: an McpServer
// served by createMcpHandler with legacy: 'reject', so it speaks MCP
// 2026-07-28 only (no initialize), on node:http. Run by test/eras
// (upstream_test.go) with MCPGATE_TEST_TS_SDK2 (the SDK's npm folder) and
// ERAS_ADDR (host:port to listen on). It prints "listening ADDR" once it
// listens.
//
// Tools (the same as the matrix's go-sdk upstreams): echo {region, city}
// (x-mcp-header "Region" and "City"), progress, sample and elicit
// (Multi Round-Trip: inputRequired), addtool (tools list_changed), touch
// (resources/updated for eras://watched), block {region}.
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const sdk2 = process.env.MCPGATE_TEST_TS_SDK2;
const { McpServer, createMcpHandler, inputRequired, inputResponse, acceptedContent, fromJsonSchema } = await import(
  pathToFileURL(path.join(sdk2, 'node_modules/@modelcontextprotocol/server/dist/index.mjs')).href
);

const watched = 'eras://watched';
const regionSchema = {
  type: 'object',
  properties: { region: { type: 'string', 'x-mcp-header': 'Region' }, city: { type: 'string', 'x-mcp-header': 'City' } },
  required: ['region'],
};
const emptySchema = { type: 'object', properties: {} };
const text = (t) => ({ content: [{ type: 'text', text: t }] });
let added = 0;
let handler;

// A fresh McpServer per request (createMcpHandler's model); what changes
// (the added tools) lives out here.
function factory() {
  const server = new McpServer(
    { name: 'eras-ts-server', version: '2.4.0' },
    { capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true } } },
  );
  server.registerTool('echo', { description: 'Answers region=<region>.', inputSchema: fromJsonSchema(regionSchema) },
    async ({ region, city }) => text(`region=${region} city=${city}`));
  server.registerTool('progress', { description: 'Says three progress notifications.', inputSchema: fromJsonSchema(emptySchema) },
    async (_args, ctx) => {
      const token = ctx.mcpReq._meta && ctx.mcpReq._meta.progressToken;
      if (token === undefined) return text('no progress token');
      for (let i = 1; i <= 3; i++) {
        await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: 3, message: 'step' } });
      }
      return text('done');
    });
  server.registerTool('sample', { description: 'Asks the client for a sampling answer.', inputSchema: fromJsonSchema(emptySchema) },
    async (_args, ctx) => {
      const r = inputResponse(ctx.mcpReq.inputResponses, 's');
      if (r.kind === 'sampling') {
        const c = Array.isArray(r.result.content) ? r.result.content[0] : r.result.content;
        return text(`sampled=${c && c.text}`);
      }
      return inputRequired({
        inputRequests: {
          s: inputRequired.createMessage({ maxTokens: 10, messages: [{ role: 'user', content: { type: 'text', text: 'who are you?' } }] }),
        },
      });
    });
  server.registerTool('elicit', { description: 'Asks the client for a name.', inputSchema: fromJsonSchema(emptySchema) },
    async (_args, ctx) => {
      const content = acceptedContent(ctx.mcpReq.inputResponses, 'e');
      if (content) return text(`elicited=accept:${content.name}`);
      return inputRequired({
        inputRequests: {
          e: inputRequired.elicit({
            message: 'Your name?',
            requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
          }),
        },
      });
    });
  server.registerTool('addtool', { description: 'Adds a tool (tools/list_changed).', inputSchema: fromJsonSchema(emptySchema) },
    async () => {
      added++;
      handler.notify.toolsChanged();
      return text(`added added${added}`);
    });
  for (let i = 1; i <= added; i++) {
    server.registerTool(`added${i}`, { description: 'Added by addtool.', inputSchema: fromJsonSchema(emptySchema) }, async () => text(`added${i}`));
  }
  server.registerTool('touch', { description: `Says resources/updated for ${watched}.`, inputSchema: fromJsonSchema(emptySchema) },
    async () => {
      handler.notify.resourceUpdated(watched);
      return text('touched');
    });
  server.registerTool('block', { description: 'Blocks until the call is cancelled.', inputSchema: fromJsonSchema(regionSchema) },
    async ({ region }, ctx) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve(text('not cancelled')), 60000);
        ctx.mcpReq.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve(text(`cancelled ${region}`));
        });
      }));
  server.registerResource('watched', watched, { mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'watched' }] }));
  return server;
}

handler = createMcpHandler(factory, { legacy: 'reject' });

// node:http ⇄ the handler's web-standard fetch face; the request's signal
// ends when the client goes away, which is how a 2026-07-28 call is
// cancelled by closing its stream.
const [host, port] = process.env.ERAS_ADDR.split(':');
const server = http.createServer(async (req, res) => {
  const ac = new AbortController();
  res.on('close', () => ac.abort());
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = chunks.length && req.method !== 'GET' && req.method !== 'HEAD' ? Buffer.concat(chunks) : undefined;
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (Array.isArray(v)) v.forEach((x) => headers.append(k, x));
      else if (v !== undefined) headers.set(k, v);
    }
    const response = await handler.fetch(
      new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers, body, signal: ac.signal }),
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body) {
      for await (const chunk of response.body) res.write(chunk);
    }
    res.end();
  } catch (e) {
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(String(e));
  }
});
server.listen(Number(port), host, () => process.stdout.write(`listening ${host}:${port}\n`));
process.on('SIGTERM', () => {
  handler.close().finally(() => process.exit(0));
});
