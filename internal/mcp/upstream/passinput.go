package upstream

import (
	"context"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// CallPassingInput is Call with Options.PassInputRequired for this call
// only: a 2026-07-28 upstream's InputRequiredResult is returned as the
// upstream sent it, and a request carrying inputResponses and a
// requestState goes to the upstream as it is (MCP 2026-07-28
// basic/patterns/mrtr). It is for a caller whose client speaks 2026-07-28
// itself and answers the upstream's input requests with a retry, such as
// the 1:1 relay; on an upstream of an earlier revision it is Call.
func (c *Client) CallPassingInput(ctx context.Context, req jsonrpc.Message, headers http.Header, onNotification func(jsonrpc.Message)) (jsonrpc.Message, error) {
	if !req.IsRequest() || !protocol.MayRequireInput(req.Method) || !c.stateless() {
		return c.Call(ctx, req, headers, onNotification)
	}
	ctx, release := c.bind(ctx)
	defer release()
	return c.statelessOnce(ctx, req, headers, onNotification)
}
