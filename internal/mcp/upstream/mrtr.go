package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// Multi Round-Trip Requests (MCP 2026-07-28 basic/patterns/mrtr): a
// 2026-07-28 upstream that needs sampling, elicitation or roots from the
// client answers tools/call, prompts/get or resources/read with an
// InputRequiredResult — inputRequests keyed by ids of its choosing, and an
// opaque requestState — and the client sends the request again with
// inputResponses under the same keys and the requestState unchanged.
//
// Unless Options.PassInputRequired, the Client does that for its caller:
// each input request becomes the session-era request of the same method,
// handed to the caller as an upstream's request is (in Relay mode to the
// Call's onNotification, answered with Respond; otherwise answered by the
// Client itself, as ownAnswer does), so that a client of an older revision
// is asked on its own session, whatever front door it came by.

// MaxInputRounds bounds the rounds of one call: an upstream that asks for
// input again and again gets a JSON-RPC error in the end.
const MaxInputRounds = 16

// inputRequired is the part of an InputRequiredResult the Client reads.
type inputRequired struct {
	ResultType    string `json:"resultType"`
	InputRequests map[string]struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	} `json:"inputRequests"`
	RequestState *string `json:"requestState"`
}

// readInputRequired reports whether result is an InputRequiredResult.
func readInputRequired(result json.RawMessage) (inputRequired, bool) {
	if rt, ok := jsonrpc.StringMember(result, "resultType"); !ok || rt != protocol.ResultTypeInputRequired {
		return inputRequired{}, false
	}
	var ir inputRequired
	if err := json.Unmarshal(result, &ir); err != nil {
		return inputRequired{}, false
	}
	return ir, true
}

// fulfilRounds sends req until the upstream completes it, fulfilling each
// InputRequiredResult in between, for at most MaxInputRounds rounds; ctx
// bounds them all.
func (c *Client) fulfilRounds(ctx context.Context, req jsonrpc.Message, headers http.Header, onNote func(jsonrpc.Message)) (jsonrpc.Message, error) {
	msg := req
	for round := 1; ; round++ {
		resp, err := c.statelessOnce(ctx, msg, headers, onNote)
		if err != nil || resp.Error != nil {
			return resp, err
		}
		ir, ok := readInputRequired(resp.Result)
		if !ok {
			return resp, nil
		}
		if round >= MaxInputRounds {
			return jsonrpc.NewError(req.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError,
				"the upstream still asks for input after %d rounds of one %s; mcpgate gives up there", MaxInputRounds, req.Method)), nil
		}
		answers, refusal, err := c.fulfil(ctx, ir, onNote)
		if err != nil {
			return jsonrpc.Message{}, c.failure(ctx, "call "+req.Method, err)
		}
		if refusal != nil {
			return jsonrpc.NewError(req.ID, refusal), nil
		}
		if msg.Params, err = retryParams(req.Params, answers, ir.RequestState); err != nil {
			return jsonrpc.Message{}, fmt.Errorf("call %s on upstream %s: %w", req.Method, c.where, err)
		}
	}
}

// retryParams are the caller's params with the answers and the upstream's
// requestState, byte for byte as the upstream gave it.
func retryParams(params json.RawMessage, answers map[string]json.RawMessage, state *string) (json.RawMessage, error) {
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	raw, err := json.Marshal(answers)
	if err != nil {
		return nil, err
	}
	if params, err = jsonrpc.WithMember(params, "inputResponses", raw); err != nil {
		return nil, fmt.Errorf("set params.inputResponses: %w", err)
	}
	if state != nil {
		if params, err = jsonrpc.WithStringMember(params, "requestState", *state); err != nil {
			return nil, fmt.Errorf("set params.requestState: %w", err)
		}
	}
	return params, nil
}

// inputMethods are the requests an InputRequiredResult may hold.
var inputMethods = []string{"sampling/createMessage", "elicitation/create", "roots/list"}

// fulfil obtains the answer to each input request of ir. A client's error
// answer is the refusal the call is answered with (the revision's
// inputResponses hold results only); err is the end of ctx or of the Client.
func (c *Client) fulfil(ctx context.Context, ir inputRequired, onNote func(jsonrpc.Message)) (answers map[string]json.RawMessage, refusal *jsonrpc.Error, err error) {
	keys := make([]string, 0, len(ir.InputRequests))
	for k := range ir.InputRequests {
		keys = append(keys, k)
	}
	slices.Sort(keys) // asked in one order on every run
	type asked struct {
		key, method string
		wait        <-chan jsonrpc.Message
		id          json.RawMessage
	}
	var pending []asked
	defer func() {
		for _, a := range pending {
			c.inputs.drop(a.id)
		}
	}()
	answers = make(map[string]json.RawMessage, len(keys))
	for _, k := range keys {
		r := ir.InputRequests[k]
		if !slices.Contains(inputMethods, r.Method) {
			return nil, jsonrpc.Errorf(jsonrpc.CodeInternalError, "the upstream asked for input by %q (input request %q), which is none of %v", r.Method, k, inputMethods), nil
		}
		if !c.opts.Relay || onNote == nil {
			// No client behind this connection: answered as the
			// session-era request would be (ownAnswer).
			resp := ownAnswer(jsonrpc.Message{ID: json.RawMessage("0"), Method: r.Method, Params: r.Params})
			if resp.Error != nil {
				return nil, inputRefused(k, r.Method, resp.Error), nil
			}
			answers[k] = resp.Result
			continue
		}
		id, wait := c.inputs.open()
		pending = append(pending, asked{key: k, method: r.Method, wait: wait, id: id})
		onNote(jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: id, Method: r.Method, Params: r.Params})
	}
	for _, a := range pending {
		select {
		case resp := <-a.wait:
			if resp.Error != nil {
				return nil, inputRefused(a.key, a.method, resp.Error), nil
			}
			answers[a.key] = resp.Result
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return answers, nil, nil
}

// inputRefused is the error a call is answered with when its client
// refused an input request: the client's own code, and a message that says
// which request it refused.
func inputRefused(key, method string, e *jsonrpc.Error) *jsonrpc.Error {
	return &jsonrpc.Error{Code: e.Code, Message: fmt.Sprintf("the upstream needs the answer to %s (input request %q), and the client refused it: %s", method, key, e.Message), Data: e.Data}
}

// inputWaits are the input requests handed to callers and not yet
// answered, by the id the caller was given. The ids are strings of the
// Client's own ("mcpgate-input-N"): a 2026-07-28 upstream sends no requests
// of its own to collide with.
type inputWaits struct {
	mu   sync.Mutex
	next int64
	wait map[string]chan jsonrpc.Message
}

// open makes a new id and the channel its answer comes on.
func (w *inputWaits) open() (json.RawMessage, <-chan jsonrpc.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	id := json.RawMessage(strconv.Quote("mcpgate-input-" + strconv.FormatInt(w.next, 10)))
	ch := make(chan jsonrpc.Message, 1)
	if w.wait == nil {
		w.wait = map[string]chan jsonrpc.Message{}
	}
	w.wait[idKey(id)] = ch
	return id, ch
}

// answer hands resp to the input request it answers; false when it
// answers none.
func (w *inputWaits) answer(resp jsonrpc.Message) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.wait[idKey(resp.ID)]
	if !ok {
		return false
	}
	delete(w.wait, idKey(resp.ID))
	ch <- resp // buffered, and answered once
	return true
}

// drop forgets an input request.
func (w *inputWaits) drop(id json.RawMessage) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.wait, idKey(id))
}
