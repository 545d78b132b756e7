package federation

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// orderRounds is how often each front door is tried: a notification and
// then a call, or an answer and then a call, alternately.
const orderRounds = 200

// orderHold is how long the upstream takes to accept a notification or an
// answer unless a call overtakes it first: the slow hop to a distant
// upstream, during which a call forwarded too early reaches it. With the
// ordering in place no call comes meanwhile, so every round waits it out.
const orderHold = 10 * time.Millisecond

// orderWait bounds every wait of the ordering test for a message.
const orderWait = 10 * time.Second

// TestNotesReachTheUpstreamBeforeLaterCalls: a client sends
// notifications/roots/list_changed, or answers the upstream's roots/list,
// and at once a tools/call; the upstream, which takes a while to accept
// each notification and answer, reports in the call how many it had
// accepted. Through every front door with a session — /mcp, /sse, /ws and
// the relay's /gateways/{id}/mcp and /gateways/{id}/sse — the call must
// never overtake what the client sent before it (docs/federation.md,
// "Order"), as it does not on the upstream directly, which is what the
// battery's roots check ("get-roots-list after list_changed") relies on.
func TestNotesReachTheUpstreamBeforeLaterCalls(t *testing.T) {
	up := newOrderUpstream(t, false)
	gw := start(t, nil)
	v := gw.Register(t, map[string]any{"name": "ord", "url": up.url})
	if v.Status != "available" {
		t.Fatalf("the ordering upstream registered as %q: %s", v.Status, v.StatusReason)
	}
	ws := "ws" + strings.TrimPrefix(gw.URL, "http")
	doors := []struct {
		name string
		tool string
		dial func(t *testing.T, client string) orderClient
	}{
		{"/mcp", "ord-seen", func(t *testing.T, c string) orderClient { return dialStreamable(t, gw, gw.URL+"/mcp", c) }},
		{"/sse", "ord-seen", func(t *testing.T, c string) orderClient { return dialSSE(t, gw, gw.URL+"/sse", c) }},
		{"/ws", "ord-seen", func(t *testing.T, c string) orderClient { return dialWebSocket(t, gw, ws+"/ws", c) }},
		{"relay /gateways/{id}/mcp", "seen", func(t *testing.T, c string) orderClient {
			return dialStreamable(t, gw, gw.URL+"/gateways/"+v.ID+"/mcp", c)
		}},
		{"relay /gateways/{id}/sse", "seen", func(t *testing.T, c string) orderClient {
			return dialSSE(t, gw, gw.URL+"/gateways/"+v.ID+"/sse", c)
		}},
	}
	for i, door := range doors {
		t.Run(strings.ReplaceAll(door.name, "/", "_"), func(t *testing.T) {
			name := "order-client-" + strconv.Itoa(i)
			c := door.dial(t, name)
			call := func(round int) int {
				t.Helper()
				res, err := c.call(jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage(strconv.Itoa(1000 + round)),
					Method: "tools/call", Params: json.RawMessage(`{"name":"` + door.tool + `","arguments":{}}`)})
				if err != nil {
					t.Fatalf("round %d: tools/call %s: %v", round, door.tool, err)
				}
				var r struct {
					Content []struct {
						Text string `json:"text"`
					} `json:"content"`
				}
				if err := json.Unmarshal(res.Result, &r); err != nil || len(r.Content) == 0 {
					t.Fatalf("round %d: tools/call %s answered %s %v", round, door.tool, res.Result, res.Error)
				}
				n, err := strconv.Atoi(r.Content[0].Text)
				if err != nil {
					t.Fatalf("round %d: tools/call %s answered %q", round, door.tool, r.Content[0].Text)
				}
				return n
			}
			// The first call opens the client's upstream session (federation
			// opens it lazily); the upstream asks on its listening stream.
			call(-1)
			sess := up.session(t, name)
			select {
			case <-sess.listening:
			case <-time.After(orderWait):
				t.Fatal("mcpgate never opened the listening stream of the client's upstream session")
			}
			overtaken := 0
			for round := range orderRounds {
				if round%2 == 0 {
					c.send(jsonrpc.Message{JSONRPC: jsonrpc.Version, Method: "notifications/roots/list_changed"})
				} else {
					sess.ask(round)
					var asked jsonrpc.Message
					select {
					case asked = <-c.asked():
					case <-time.After(orderWait):
						t.Fatalf("round %d: the upstream's roots/list never reached the client", round)
					}
					if asked.Method != "roots/list" {
						t.Fatalf("round %d: the client was asked %s, want roots/list", round, asked.Method)
					}
					c.send(jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: asked.ID, Result: json.RawMessage(`{"roots":[]}`)})
				}
				c.sent(t, sess)
				if seen := call(round); seen < round+1 {
					overtaken++
				}
				c.settle(t)
			}
			t.Logf("%s: %d of %d calls overtook the notification or answer sent before them", door.name, overtaken, orderRounds)
			if overtaken > 0 {
				t.Errorf("%s: %d of %d calls reached the upstream before the notification or answer the client sent before them", door.name, overtaken, orderRounds)
			}
		})
	}
}

// TestANoteTheUpstreamNeverAcceptsHoldsLaterCallsForTheUpstreamTimeout:
// a notification the upstream never accepts holds the client's next call
// (which must not overtake it) for UPSTREAM_TIMEOUT at most; then the
// notification fails, on /mcp with 502 naming the timeout, and the call
// goes on. Before, such a notification was never given up.
func TestANoteTheUpstreamNeverAcceptsHoldsLaterCallsForTheUpstreamTimeout(t *testing.T) {
	const timeout = 2 * time.Second
	up := newOrderUpstream(t, true)
	gw := start(t, map[string]string{"UPSTREAM_TIMEOUT": timeout.String()})
	if v := gw.Register(t, map[string]any{"name": "ord", "url": up.url}); v.Status != "available" {
		t.Fatalf("the ordering upstream registered as %q: %s", v.Status, v.StatusReason)
	}
	name := "never-client"
	c := dialStreamable(t, gw, gw.URL+"/mcp", name).(*streamableClient)
	seen := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage("1"), Method: "tools/call", Params: json.RawMessage(`{"name":"ord-seen","arguments":{}}`)}
	if _, err := c.call(seen); err != nil { // opens the client's upstream session
		t.Fatalf("tools/call ord-seen: %v", err)
	}
	sess := up.session(t, name)

	start := time.Now()
	noted := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), orderWait)
		defer cancel()
		resp, err := c.do(ctx, jsonrpc.Message{JSONRPC: jsonrpc.Version, Method: "notifications/roots/list_changed"})
		if err != nil {
			noted <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		noted <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	c.sent(t, sess)
	seen.ID = json.RawMessage("2")
	res, err := c.call(seen)
	took := time.Since(start)
	if err != nil || res.Error != nil {
		t.Fatalf("the call after a notification the upstream never accepted: %v %v (after %s)", err, res.Error, took.Round(time.Millisecond))
	}
	if took < timeout || took > timeout+5*time.Second {
		t.Errorf("the call was answered after %s; want it held for the upstream timeout (%s), and not much longer", took.Round(time.Millisecond), timeout)
	}
	if got := <-noted; !strings.HasPrefix(got, "502 ") || !strings.Contains(got, "did not answer within "+timeout.String()) {
		t.Errorf("the notification the upstream never accepted was answered %q; want 502 saying it did not answer within %s", got, timeout)
	}
}

// orderUpstream is a hand-rolled Streamable HTTP MCP server with one
// tool, seen, which answers how many notifications/roots/list_changed and
// answers to its roots/list its session has accepted. Accepting one takes
// orderHold, or less when a call arrives meanwhile (an overtake, then).
type orderUpstream struct {
	url string
	// never, when set, has it never accept a notification or answer: it
	// holds each one's POST until mcpgate gives up on it.
	never bool

	mu       sync.Mutex
	sessions map[string]*orderSession
	changed  chan struct{} // signalled when a session is added
	next     int
}

type orderSession struct {
	client    string               // clientInfo.name of its initialize
	accepted  atomic.Int64         // notifications and answers accepted
	called    chan struct{}        // a call of seen arrived
	asks      chan jsonrpc.Message // requests for its listening stream
	listening chan struct{}        // closed when a listening stream opened
	listen    sync.Once
	arrived   chan struct{} // a notification or answer began to arrive
}

func newOrderUpstream(t *testing.T, never bool) *orderUpstream {
	up := &orderUpstream{never: never, sessions: map[string]*orderSession{}, changed: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: up, ReadHeaderTimeout: orderWait}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close() // its listening streams never end by themselves
		<-served
	})
	up.url = "http://" + ln.Addr().String() + "/mcp"
	return up
}

// session returns the session the client named client opened, waiting
// for it.
func (up *orderUpstream) session(t *testing.T, client string) *orderSession {
	t.Helper()
	deadline := time.After(orderWait)
	for {
		up.mu.Lock()
		for _, s := range up.sessions {
			if s.client == client {
				up.mu.Unlock()
				return s
			}
		}
		up.mu.Unlock()
		select {
		case <-up.changed:
		case <-deadline:
			t.Fatalf("client %s never opened a session with the upstream", client)
		}
	}
}

// ask sends roots/list on the session's listening stream.
func (s *orderSession) ask(round int) {
	s.asks <- jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage(`"ask-` + strconv.Itoa(round) + `"`), Method: "roots/list"}
}

func (up *orderUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up.mu.Lock()
	s := up.sessions[r.Header.Get("Mcp-Session-Id")]
	up.mu.Unlock()
	switch r.Method {
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet:
		if s == nil {
			http.Error(w, "unknown session", http.StatusNotFound)
			return
		}
		up.stream(w, r, s)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m, err := jsonrpc.DecodeMessage(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if m.Method == "initialize" {
		up.initialize(w, m)
		return
	}
	if s == nil {
		http.Error(w, "unknown session", http.StatusNotFound)
		return
	}
	switch {
	case m.Method == "notifications/roots/list_changed" || m.IsResponse():
		select { // a call before this one is not an overtake
		case <-s.called:
		default:
		}
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		if up.never {
			<-r.Context().Done()
			return
		}
		hold := time.NewTimer(orderHold)
		select {
		case <-s.called:
		case <-hold.C:
		}
		hold.Stop()
		s.accepted.Add(1)
		w.WriteHeader(http.StatusAccepted)
	case !m.IsRequest():
		w.WriteHeader(http.StatusAccepted)
	case m.Method == "tools/list":
		writeOrderAnswer(w, m.ID, `{"tools":[{"name":"seen","description":"How many notifications and answers the session accepted.","inputSchema":{"type":"object"}}]}`)
	case m.Method == "tools/call":
		n := s.accepted.Load() // before the signal, which ends a hold
		select {
		case s.called <- struct{}{}:
		default:
		}
		writeOrderAnswer(w, m.ID, `{"content":[{"type":"text","text":"`+strconv.FormatInt(n, 10)+`"}]}`)
	default:
		writeOrderAnswer(w, m.ID, `{}`)
	}
}

func (up *orderUpstream) initialize(w http.ResponseWriter, m jsonrpc.Message) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
		ClientInfo      struct {
			Name string `json:"name"`
		} `json:"clientInfo"`
	}
	_ = json.Unmarshal(m.Params, &p)
	up.mu.Lock()
	up.next++
	id := "order-" + strconv.Itoa(up.next)
	up.sessions[id] = &orderSession{client: p.ClientInfo.Name, called: make(chan struct{}, 1), asks: make(chan jsonrpc.Message, 4),
		listening: make(chan struct{}), arrived: make(chan struct{}, 1)}
	up.mu.Unlock()
	select {
	case up.changed <- struct{}{}:
	default:
	}
	w.Header().Set("Mcp-Session-Id", id)
	version, _ := json.Marshal(p.ProtocolVersion)
	writeOrderAnswer(w, m.ID, `{"protocolVersion":`+string(version)+`,"capabilities":{"tools":{}},"serverInfo":{"name":"order","version":"1"}}`)
}

// stream is the session's listening stream: it carries what ask queues.
func (up *orderUpstream) stream(w http.ResponseWriter, r *http.Request, s *orderSession) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	s.listen.Do(func() { close(s.listening) })
	for {
		select {
		case <-r.Context().Done():
			return
		case m := <-s.asks:
			data, _ := jsonrpc.Encode(m)
			if _, err := fmt.Fprintf(w, "event: message\ndata: %s\n\n", data); err != nil {
				return
			}
			_ = rc.Flush()
		}
	}
}

func writeOrderAnswer(w http.ResponseWriter, id json.RawMessage, result string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":` + result + `}`))
}

// orderClient is a client spoken by hand on one front door, so that it
// sends exactly when the test says, without waiting for anything.
type orderClient interface {
	// send sends a notification or an answer and returns at once: on
	// Streamable HTTP without waiting for the POST's answer, on legacy
	// SSE once the POST is accepted (mcpgate accepts it before handling
	// it), on WebSocket once the frame is written.
	send(m jsonrpc.Message)
	// sent returns once mcpgate has surely received what send sent: on
	// Streamable HTTP, whose POSTs are concurrent, once it reached s (a
	// later POST might otherwise arrive at mcpgate first); at once on the
	// others, which hand mcpgate each message in order.
	sent(t *testing.T, s *orderSession)
	// call sends a request and returns its answer.
	call(m jsonrpc.Message) (jsonrpc.Message, error)
	// asked carries the requests mcpgate sends the client.
	asked() <-chan jsonrpc.Message
	// settle waits for the sends still on their way, failing on an error.
	settle(t *testing.T)
}

// initializeParams are the client's: it has roots.
func initializeParams(client string) json.RawMessage {
	return json.RawMessage(`{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true}},"clientInfo":{"name":"` + client + `","version":"1"}}`)
}

// streamableClient speaks Streamable HTTP, with its GET stream open.
type streamableClient struct {
	gw       *gatewaytest.Gateway
	endpoint string
	session  string
	in       chan jsonrpc.Message
	sending  sync.WaitGroup
	errs     chan error
}

func dialStreamable(t *testing.T, gw *gatewaytest.Gateway, endpoint, client string) orderClient {
	t.Helper()
	c := &streamableClient{gw: gw, endpoint: endpoint, in: make(chan jsonrpc.Message, 16), errs: make(chan error, orderRounds)}
	res, err := c.call(jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage("0"), Method: "initialize", Params: initializeParams(client)})
	if err != nil || res.Error != nil || c.session == "" {
		t.Fatalf("initialize on %s: %v %v (session %q)", endpoint, err, res.Error, c.session)
	}
	if status, err := c.post(t.Context(), jsonrpc.Message{JSONRPC: jsonrpc.Version, Method: "notifications/initialized"}); err != nil || status != http.StatusAccepted {
		t.Fatalf("notifications/initialized on %s: %d %v", endpoint, status, err)
	}
	resp, cancel := openEventStream(t, gw, endpoint, c.header)
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer resp.Body.Close()
		readEvents(resp.Body, func(m jsonrpc.Message) { c.in <- m })
	}()
	t.Cleanup(func() {
		cancel()
		<-read
		c.sending.Wait()
		req, _ := http.NewRequest(http.MethodDelete, endpoint, nil)
		c.header(req)
		if resp, err := gw.HTTPClient().Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return c
}

func (c *streamableClient) header(req *http.Request) {
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
}

func (c *streamableClient) do(ctx context.Context, m jsonrpc.Message) (*http.Response, error) {
	body, err := jsonrpc.Encode(m)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	c.header(req)
	return c.gw.HTTPClient().Do(req)
}

func (c *streamableClient) post(ctx context.Context, m jsonrpc.Message) (int, error) {
	resp, err := c.do(ctx, m)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func (c *streamableClient) send(m jsonrpc.Message) {
	c.sending.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), orderWait)
		defer cancel()
		if status, err := c.post(ctx, m); err != nil || status != http.StatusAccepted {
			c.errs <- fmt.Errorf("POST %s: %d %v, want 202", m.Method, status, err)
		}
	})
}

func (c *streamableClient) sent(t *testing.T, s *orderSession) {
	t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(orderWait):
		t.Fatal("the notification or answer never reached the upstream")
	}
}

func (c *streamableClient) call(m jsonrpc.Message) (jsonrpc.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), orderWait)
	defer cancel()
	resp, err := c.do(ctx, m)
	if err != nil {
		return jsonrpc.Message{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return jsonrpc.Message{}, fmt.Errorf("HTTP %d %s", resp.StatusCode, b)
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		c.session = id
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return jsonrpc.Message{}, err
		}
		return jsonrpc.DecodeMessage(b)
	}
	var answer *jsonrpc.Message
	readEvents(resp.Body, func(got jsonrpc.Message) {
		if got.IsResponse() && answer == nil {
			answer = &got
		}
	})
	if answer == nil {
		return jsonrpc.Message{}, fmt.Errorf("the event stream ended without an answer")
	}
	return *answer, nil
}

func (c *streamableClient) asked() <-chan jsonrpc.Message { return c.in }

func (c *streamableClient) settle(t *testing.T) {
	t.Helper()
	c.sending.Wait()
	select {
	case err := <-c.errs:
		t.Fatal(err)
	default:
	}
}

// openEventStream opens an event stream with GET, with the headers header
// sets; cancel ends it.
func openEventStream(t *testing.T, gw *gatewaytest.Gateway, endpoint string, header func(*http.Request)) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	header(req)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := gw.HTTPClient().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET %s: %v %v", endpoint, err, resp)
	}
	return resp, cancel
}

// readEvents hands on the JSON-RPC messages of an event stream until it
// ends.
func readEvents(r io.Reader, each func(jsonrpc.Message)) {
	br := bufio.NewReader(r)
	for {
		e, err := mcptest.ReadEvent(br)
		if err != nil {
			return
		}
		if e.Name != "message" && e.Name != "" || e.Data == "" {
			continue
		}
		if m, err := jsonrpc.DecodeMessage([]byte(e.Data)); err == nil {
			each(m)
		}
	}
}

// streamClient speaks a transport of one connection, legacy SSE or
// WebSocket: answers and requests arrive on it in any order.
type streamClient struct {
	write   func(ctx context.Context, body []byte) error
	in      chan jsonrpc.Message // requests for the client
	errs    chan error           // of sends
	mu      sync.Mutex
	waiting map[string]chan jsonrpc.Message // answers, by id
}

func newStreamClient(write func(context.Context, []byte) error) *streamClient {
	return &streamClient{write: write, in: make(chan jsonrpc.Message, 16), errs: make(chan error, orderRounds), waiting: map[string]chan jsonrpc.Message{}}
}

// take handles a message that arrived from mcpgate.
func (c *streamClient) take(m jsonrpc.Message) {
	if m.IsRequest() {
		c.in <- m
		return
	}
	c.mu.Lock()
	ch := c.waiting[string(m.ID)]
	delete(c.waiting, string(m.ID))
	c.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}

func (c *streamClient) send(m jsonrpc.Message) {
	body, _ := jsonrpc.Encode(m)
	ctx, cancel := context.WithTimeout(context.Background(), orderWait)
	defer cancel()
	if err := c.write(ctx, body); err != nil {
		c.errs <- fmt.Errorf("send %s: %w", m.Method, err)
	}
}

func (c *streamClient) sent(*testing.T, *orderSession) {}

func (c *streamClient) call(m jsonrpc.Message) (jsonrpc.Message, error) {
	ch := make(chan jsonrpc.Message, 1)
	c.mu.Lock()
	c.waiting[string(m.ID)] = ch
	c.mu.Unlock()
	body, _ := jsonrpc.Encode(m)
	ctx, cancel := context.WithTimeout(context.Background(), orderWait)
	defer cancel()
	if err := c.write(ctx, body); err != nil {
		return jsonrpc.Message{}, err
	}
	select {
	case answer := <-ch:
		return answer, nil
	case <-ctx.Done():
		return jsonrpc.Message{}, fmt.Errorf("no answer to %s within %s", m.Method, orderWait)
	}
}

func (c *streamClient) asked() <-chan jsonrpc.Message { return c.in }

func (c *streamClient) settle(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.errs:
		t.Fatal(err)
	case m := <-c.in:
		t.Fatalf("mcpgate sent the client %s, which nothing asked", m.Method)
	default:
	}
}

// initializeStream initializes a session on a stream transport.
func (c *streamClient) initialize(t *testing.T, where, client string) {
	t.Helper()
	res, err := c.call(jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage("0"), Method: "initialize", Params: initializeParams(client)})
	if err != nil || res.Error != nil {
		t.Fatalf("initialize on %s: %v %v", where, err, res.Error)
	}
	c.send(jsonrpc.Message{JSONRPC: jsonrpc.Version, Method: "notifications/initialized"})
}

func dialSSE(t *testing.T, gw *gatewaytest.Gateway, endpoint, client string) orderClient {
	t.Helper()
	resp, cancel := openEventStream(t, gw, endpoint, func(*http.Request) {})
	br := bufio.NewReader(resp.Body)
	var post string
	for post == "" {
		e, err := mcptest.ReadEvent(br)
		if err != nil {
			cancel()
			t.Fatalf("GET %s: no endpoint event: %v", endpoint, err)
		}
		if e.Name == "endpoint" {
			base, _ := url.Parse(endpoint)
			ref, err := base.Parse(e.Data)
			if err != nil {
				cancel()
				t.Fatalf("GET %s: endpoint %q: %v", endpoint, e.Data, err)
			}
			post = ref.String()
		}
	}
	hc := gw.HTTPClient()
	c := newStreamClient(func(ctx context.Context, body []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, post, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("POST %s: %d %s", post, resp.StatusCode, b)
		}
		return nil
	})
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer resp.Body.Close()
		readEvents(br, c.take)
	}()
	t.Cleanup(func() {
		cancel()
		<-read
	})
	c.initialize(t, endpoint, client)
	return c
}

func dialWebSocket(t *testing.T, gw *gatewaytest.Gateway, endpoint, client string) orderClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), orderWait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, endpoint, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + gw.Token}}, Subprotocols: []string{"mcp"}})
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	c := newStreamClient(func(ctx context.Context, body []byte) error {
		return conn.Write(ctx, websocket.MessageText, body)
	})
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			if m, err := jsonrpc.DecodeMessage(data); err == nil {
				c.take(m)
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close(websocket.StatusNormalClosure, "")
		<-read
	})
	c.initialize(t, endpoint, client)
	return c
}
