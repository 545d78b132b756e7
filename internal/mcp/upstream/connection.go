package upstream

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// The session layer (Client: ids rewritten per hop, calls tracked, the
// upstream's requests routed, notifications attributed) sits on a
// connection, one implementation per transport: Streamable HTTP
// (streamable.go) and the legacy HTTP+SSE transport (sse.go). A transport
// is added by writing a dialer and a connection; the session layer does not
// change. A connection only carries raw JSON-RPC messages: it decides
// nothing about them, and hands everything it did not ask for to its inbox.

// dialer opens a connection of one transport to the upstream, ready for
// initialize. in is the session layer's side of it. ctx bounds the opening,
// not the connection's life.
type dialer func(ctx context.Context, in inbox) (connection, error)

// connection carries the messages of one upstream session.
type connection interface {
	// roundTrip sends the encoded request of cl (with cl's headers) and
	// returns its response. Messages that arrive about the request before
	// its response are given to in.inCall with deliver, in order, on the
	// calling goroutine. A 404 for a session the upstream forgot wraps
	// errSessionLost.
	roundTrip(ctx context.Context, cl *call, body []byte, deliver func(jsonrpc.Message)) (jsonrpc.Message, error)
	// send sends an encoded message that gets no answer: a notification, or
	// a response to the upstream's request.
	send(ctx context.Context, body []byte, headers http.Header) error
	// negotiated records the protocol version initialize agreed on, which
	// every later request of the session carries.
	negotiated(version string)
	// openListening is called between the answer to initialize and
	// notifications/initialized: the connection opens what it listens on
	// outside any call, if it is not open yet, and returns once the
	// upstream has it (bounded), so that nothing the upstream says there
	// upon notifications/initialized is lost. Nothing it brings is handed
	// on before start.
	openListening(ctx context.Context)
	// start is called once the session is initialized and in place: the
	// connection hands on what it listens on outside any call, opening it
	// if need be.
	start()
	// close ends the session at the upstream (bounded by ctx) and stops
	// what the connection runs. It is idempotent.
	close(ctx context.Context) error
}

// inbox is where a connection hands what the upstream sends it outside a
// call's own answer, and how it tells the session layer about its state.
// The session layer gives each connection its own.
type inbox interface {
	// shared takes a message from a stream every call of the session
	// shares. only says the stream is the session's one and only (the
	// legacy transport), so that a message about no call in particular may
	// still be about the one call in flight.
	shared(m jsonrpc.Message, only bool)
	// inCall takes a message that came in the answer to cl's request and
	// returns cl's response when m is it.
	inCall(ctx context.Context, cl *call, m jsonrpc.Message, deliver func(jsonrpc.Message)) *jsonrpc.Message
	// lost says the session is gone (its stream ended, or the upstream
	// forgot it): no new call goes on it, and the next one opens a new
	// session.
	lost(err error)
	// replace opens a new session in place of the lost one, for a
	// connection that must listen on one (it replaces it once, however
	// many ask). replaced says a new session is in place.
	replace() (replaced bool)
	// goTracked runs f on a goroutine the Client's Close waits for; false
	// (and f not run) once the Client is closed.
	goTracked(f func()) bool
}

// ownHeaders gives the headers of a request mcpgate makes for itself
// (Options.Headers), asked for anew for every such request so that a
// refreshed credential is always the one sent.
type ownHeaders func(context.Context) (http.Header, error)

// get returns them; none when there is no source.
func (f ownHeaders) get(ctx context.Context) (http.Header, error) {
	if f == nil {
		return nil, nil
	}
	hs, err := f(ctx)
	if err != nil {
		return nil, fmt.Errorf("the upstream's own headers: %w", err)
	}
	return hs, nil
}
