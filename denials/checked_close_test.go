package denials_test

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
)

// blackhole is a client connection that, once dropping is set, loses
// everything the client writes, as a network that takes the bytes and
// never delivers them: a flush then never gets its PONG. pinged receives
// when a PING has been lost so.
type blackhole struct {
	net.Conn
	dropping atomic.Bool
	pinged   chan struct{}
}

func (c *blackhole) Write(p []byte) (int, error) {
	if !c.dropping.Load() {
		return c.Conn.Write(p)
	}
	if bytes.Contains(p, []byte("PING\r\n")) {
		select {
		case c.pinged <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// blackholeDialer dials TCP and keeps the one connection it made.
type blackholeDialer struct{ conn *blackhole }

func (d *blackholeDialer) Dial(network, address string) (net.Conn, error) {
	conn, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	d.conn = &blackhole{Conn: conn, pinged: make(chan struct{}, 1)}
	return d.conn, nil
}

// A close of the connection while PublishChecked or SubscribeChecked waits
// for the server to have read what it sent (its flush) ends the call at
// once, with an error wrapping nats.ErrConnectionClosed, not at its
// deadline. nats.go ends a pending flush when its connection closes; this
// keeps it so.
func TestCheckedCallsEndOnClose(t *testing.T) {
	s := testserver.New(t)
	const timeout = 10 * time.Second
	tests := []struct {
		name string
		call func(ctx context.Context, nc *nats.Conn) error
	}{
		{name: "PublishChecked", call: func(ctx context.Context, nc *nats.Conn) error {
			return denials.PublishChecked(ctx, nc, nats.NewMsg("svc"))
		}},
		{name: "SubscribeChecked", call: func(ctx context.Context, nc *nats.Conn) error {
			sub, err := denials.SubscribeChecked(ctx, nc, "svc", "", func() (*nats.Subscription, error) {
				return nc.SubscribeSync("svc")
			})
			if err == nil {
				_ = sub.Unsubscribe()
			}
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dialer := &blackholeDialer{}
			nc, err := nats.Connect(s.ClientURL(), nats.SetCustomDialer(dialer), nats.NoReconnect())
			require.NoError(t, err)
			defer nc.Close()
			dialer.conn.dropping.Store(true)
			done := make(chan struct{})
			defer close(done)
			go func() {
				select {
				case <-dialer.conn.pinged:
					nc.Close()
				case <-done:
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			err = tc.call(ctx, nc)
			require.ErrorIs(t, err, nats.ErrConnectionClosed)
			assert.Less(t, time.Since(start), clitest.CloseBound, "the close must end the call, not its %v timeout", timeout)
		})
	}
}
