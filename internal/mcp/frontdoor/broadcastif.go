package frontdoor

import "github.com/mcpgate/mcpgate/internal/jsonrpc"

// BroadcastIf is Broadcast to only the sessions whose backend keep accepts
// (nil for a session that has none yet), so that a change is told only to
// the clients it concerns: a list_changed about an upstream a client may
// not use would tell it that upstream exists.
func (s *Streamable) BroadcastIf(m jsonrpc.Message, keep func(Backend) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		if keep(sess.backend) {
			deliverLocked(sess, m)
		}
	}
}

// BroadcastIf is Broadcast to only the sessions whose backend keep accepts.
func (h *SSE) BroadcastIf(m jsonrpc.Message, keep func(Backend) bool) {
	h.sessions.broadcastIf(m, keep)
}

// BroadcastIf is Broadcast to only the sessions whose backend keep accepts.
func (h *WebSocket) BroadcastIf(m jsonrpc.Message, keep func(Backend) bool) {
	h.sessions.broadcastIf(m, keep)
}

func (t *streamSessions) broadcastIf(m jsonrpc.Message, keep func(Backend) bool) {
	data, err := jsonrpc.Encode(m)
	if err != nil {
		return
	}
	t.mu.Lock()
	sessions := t.listLocked()
	t.mu.Unlock()
	for _, s := range sessions {
		s.mu.Lock()
		b := s.backend
		s.mu.Unlock()
		if keep(b) {
			s.offer(data)
		}
	}
}
