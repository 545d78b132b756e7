package main

import (
	"net"
	"sync/atomic"
)

// countingListener counts the connections it accepts. A client that cannot
// reuse its connections shows here: on loopback a new connection is cheap
// but not free, and it lands on the latency of the call that makes it.
type countingListener struct {
	net.Listener
	accepted *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// listenLoopback listens on a free loopback port.
func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
