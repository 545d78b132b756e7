package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// Multi Round-Trip Requests (MCP 2026-07-28, SEP-2322) towards a stateless
// client: when an upstream on a session asks the client something in the
// middle of its call (sampling, elicitation, roots), mcpgate answers the
// client's request with an InputRequiredResult — the upstream's request
// under an id of mcpgate's, and a requestState — while the upstream call
// waits, parked. The client retries the same request with inputResponses
// and that requestState; mcpgate hands the answer to the waiting upstream
// request and goes on with the call, answering the retry with its result
// or with the next InputRequiredResult.
//
// A requestState is opaque and integrity-protected: an id, the expiry and
// an HMAC-SHA256 over them and the principal, under a key of this
// instance's, made fresh at start. It can be used once (each round gets a
// new one), only by the client it was issued to, only before it expires
// (mrtrTTL), and only for the same method and name. The parked call lives
// on the instance that issued it: a retry that lands on another instance
// is refused as unknown (it cannot verify the state, and holds no call),
// and the client must call again from the start.

// mrtrTTL is how long a parked call waits for its client's retry.
const mrtrTTL = 2 * time.Minute

// mrtrMethods are the requests that may be answered with an
// InputRequiredResult (SEP-2322).
func mrtrMethod(method string) bool {
	return method == "tools/call" || method == "prompts/get" || method == "resources/read"
}

// parkedCall is an upstream call of a stateless client that asked it
// something and waits for the answer.
type parkedCall struct {
	who, method, name string
	cancel            context.CancelFunc // ends the call
	asks              chan askedInput    // the upstream's requests, as they come
	done              chan jsonrpc.Message
	notify            atomic.Pointer[func(jsonrpc.Message)] // the current request's Inbound.Notify
	pending           map[string]askedInput                 // by the inputRequests id given the client
	next              int
	timer             *time.Timer
}

type askedInput struct {
	fs  pooledSession
	req jsonrpc.Message // under the id the pooled session gave it
}

// mrtrCalls are the parked calls of a Stateless, by the id of their
// current requestState.
type mrtrCalls struct {
	key  []byte
	mu   sync.Mutex
	byID map[string]*parkedCall
}

func newMRTRCalls() *mrtrCalls {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &mrtrCalls{key: key, byID: map[string]*parkedCall{}}
}

func (m *mrtrCalls) mac(id, who string, expiry int64) string {
	h := hmac.New(sha256.New, m.key)
	fmt.Fprintf(h, "%s\x00%s\x00%d", id, who, expiry)
	return hex.EncodeToString(h.Sum(nil))
}

// park files pc under a new requestState, which it returns.
func (m *mrtrCalls) park(pc *parkedCall) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	expiry := time.Now().Add(mrtrTTL).Unix()
	m.mu.Lock()
	m.byID[id] = pc
	m.mu.Unlock()
	if pc.timer != nil {
		pc.timer.Stop()
	}
	pc.timer = time.AfterFunc(mrtrTTL, func() {
		if m.take(id) != nil {
			pc.cancel() // never retried: the upstream is told
		}
	})
	return id + "." + strconv.FormatInt(expiry, 10) + "." + m.mac(id, pc.who, expiry)
}

func (m *mrtrCalls) take(id string) *parkedCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	pc := m.byID[id]
	delete(m.byID, id)
	return pc
}

// resume finds the call parked under state for principal: verified, not
// expired, once.
func (m *mrtrCalls) resume(state, principal string) (*parkedCall, error) {
	parts := strings.Split(state, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("params.requestState is not one mcpgate issued")
	}
	expiry, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !hmac.Equal([]byte(parts[2]), []byte(m.mac(parts[0], principal, expiry))) {
		return nil, fmt.Errorf("params.requestState is not one mcpgate issued to this client (or it was issued by another mcpgate instance: call again without it)")
	}
	if time.Now().Unix() > expiry {
		return nil, fmt.Errorf("params.requestState has expired: call again without it")
	}
	pc := m.take(parts[0])
	if pc == nil {
		return nil, fmt.Errorf("params.requestState was used already, or its call has ended: call again without it")
	}
	pc.timer.Stop()
	return pc, nil
}

// callWithInput runs a routed request of a stateless client that an
// upstream may ask something on the way (mrtrMethod): a fresh call, or
// the retry of a parked one (params.requestState).
func (s *Stateless) callWithInput(ctx context.Context, key string, open func(context.Context, func(jsonrpc.Message)) pooledSession, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	who := s.sessions.principal(ctx)
	name := routedName(msg)
	if state, ok := jsonrpc.StringMember(msg.Params, "requestState"); ok && state != "" {
		pc, err := s.mrtr.resume(state, who)
		if err == nil && (pc.method != msg.Method || pc.name != name) {
			pc.cancel()
			err = fmt.Errorf("params.requestState belongs to another request (%s %s)", pc.method, pc.name)
		}
		if err != nil {
			return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%v", err))
		}
		if err := s.answerInputs(ctx, pc, msg, in); err != nil {
			pc.cancel()
			return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%v", err))
		}
		return s.await(ctx, pc, in)
	}
	callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pc := &parkedCall{who: who, method: msg.Method, name: name, cancel: cancel,
		asks: make(chan askedInput, 8), done: make(chan jsonrpc.Message, 1), pending: map[string]askedInput{}}
	callIn := in
	callIn.Notify = func(m jsonrpc.Message) {
		if n := pc.notify.Load(); n != nil && *n != nil {
			(*n)(m)
		}
	}
	callIn.ask = func(fs pooledSession, m jsonrpc.Message) {
		select {
		case pc.asks <- askedInput{fs: fs, req: m}:
		case <-callCtx.Done():
		}
	}
	msg.Params = withoutMRTR(msg.Params)
	go func() {
		defer cancel()
		resp, _ := s.sessions.handleOn(callCtx, key, open, msg, callIn)
		pc.done <- resp
	}()
	return s.await(ctx, pc, in)
}

// await answers the client's request of a running call: with the call's
// answer, or with an InputRequiredResult once the upstream asks something.
// A client that goes away meanwhile ends the call.
func (s *Stateless) await(ctx context.Context, pc *parkedCall, in Inbound) jsonrpc.Message {
	notify := in.Notify
	pc.notify.Store(&notify)
	defer pc.notify.Store(nil)
	select {
	case resp := <-pc.done:
		return resp
	case ask := <-pc.asks:
		inputs := map[string]any{}
		for {
			pc.next++
			id := "mcpgate-input-" + strconv.Itoa(pc.next)
			pc.pending[id] = ask
			inputs[id] = map[string]any{"method": ask.req.Method, "params": ask.req.Params}
			select { // the upstream's other requests already waiting go along
			case ask = <-pc.asks:
				continue
			default:
			}
			break
		}
		return result(mustJSON(map[string]any{"resultType": "input_required", "inputRequests": inputs, "requestState": s.mrtr.park(pc)}))
	case <-ctx.Done():
		pc.cancel()
		return failure(jsonrpc.Errorf(jsonrpc.CodeInternalError, "the request was cancelled"))
	}
}

// answerInputs hands the client's inputResponses to the upstream requests
// waiting for them.
func (s *Stateless) answerInputs(ctx context.Context, pc *parkedCall, msg jsonrpc.Message, in Inbound) error {
	var responses map[string]json.RawMessage
	raw, ok := jsonrpc.Member(msg.Params, "inputResponses")
	if !ok || json.Unmarshal(raw, &responses) != nil {
		return fmt.Errorf("params.inputResponses is required with params.requestState, an object")
	}
	for id, ask := range pc.pending {
		answer, ok := responses[id]
		if !ok {
			return fmt.Errorf("params.inputResponses has no answer to %q", id)
		}
		resp := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: ask.req.ID, Result: answer}
		if err := ask.fs.Respond(ctx, resp, in); err != nil {
			return fmt.Errorf("could not hand the answer to %q to the upstream: %v", id, err)
		}
		delete(pc.pending, id)
	}
	return nil
}

// routedName is what a request names: a tool or prompt, or a URI.
func routedName(msg jsonrpc.Message) string {
	if msg.Method == "resources/read" {
		uri, _ := jsonrpc.StringMember(msg.Params, "uri")
		return uri
	}
	name, _ := jsonrpc.StringMember(msg.Params, "name")
	return name
}

// withoutMRTR drops inputResponses and requestState from params: they are
// this hop's, not the upstream's.
func withoutMRTR(params json.RawMessage) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(params, &obj) != nil {
		return params
	}
	_, a := obj["inputResponses"]
	_, b := obj["requestState"]
	if !a && !b {
		return params
	}
	delete(obj, "inputResponses")
	delete(obj, "requestState")
	out, err := json.Marshal(obj)
	if err != nil {
		return params
	}
	return out
}
