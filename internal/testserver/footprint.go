// What a request or a gather leaves behind once it has ended (issue 16),
// read the same way by every package's tests.

package testserver

import (
	"runtime"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Footprint is what a requester leaves behind: its connection's
// subscriptions (nc.NumSubscriptions), the server's (NumSubscriptions) and
// the process's goroutines (runtime.NumGoroutine). Once a request or a
// gather has ended, all three are back where they were before it.
type Footprint struct {
	Client, Server, Goroutines int
}

// FootprintOf reads the Footprint of nc on s, after a flush of nc if it is
// open, so that the server has read its SUBs and UNSUBs.
func FootprintOf(s *server.Server, nc *nats.Conn) (Footprint, error) {
	if !nc.IsClosed() {
		if err := nc.Flush(); err != nil {
			return Footprint{}, err
		}
	}
	return Footprint{Client: nc.NumSubscriptions(), Server: int(s.NumSubscriptions()), Goroutines: runtime.NumGoroutine()}, nil
}

// SettleFootprint reads FootprintOf(s, nc) with Settle until it reads one
// without error for which back holds, or ReadyTimeout passes, and returns
// the last one read and its error: nats.go and the server end their
// goroutines, and drop a closed connection's subscriptions, on their own
// time. Like Settle, it polls on the calling goroutine.
func SettleFootprint(s *server.Server, nc *nats.Conn, back func(Footprint) bool) (Footprint, error) {
	var f Footprint
	var err error
	Settle(func() bool {
		f, err = FootprintOf(s, nc)
		return err == nil && back(f)
	})
	return f, err
}
