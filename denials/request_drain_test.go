package denials_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/testserver"
)

// A drain of the connection during a denials.Request ends it within one round
// trip (as a close does), with nats.ErrConnectionClosed, and the drain
// itself is not held.
func TestRequestDrainDuringWait(t *testing.T) {
	s := testserver.New(t)
	svc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer svc.Close()
	held := make(chan struct{}, 1)
	_, err = svc.Subscribe("hold", func(*nats.Msg) { held <- struct{}{} })
	require.NoError(t, err)
	require.NoError(t, svc.Flush())

	for _, tc := range []struct {
		name string
		end  func(nc *nats.Conn)
	}{
		{"drain", func(nc *nats.Conn) { _ = nc.Drain() }},
		{"close", func(nc *nats.Conn) { nc.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer nc.Close()
			go func() { <-held; tc.end(nc) }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err = denials.Request(ctx, nc, nats.NewMsg("hold"))
			took := time.Since(start)
			require.ErrorIs(t, err, nats.ErrConnectionClosed)
			assert.Less(t, took, 2*time.Second)
		})
	}
}

// A close while disconnected (the request in the reconnect buffer) ends a
// denials.Request at once with nats.ErrConnectionClosed.
func TestRequestClosedWhileDisconnected(t *testing.T) {
	s := testserver.New(t)
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
	require.NoError(t, err)
	defer nc.Close()
	// a first request, so the inbox is known allowed
	ctx0, cancel0 := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = denials.Request(ctx0, nc, nats.NewMsg("nobody"))
	cancel0()
	require.ErrorIs(t, err, nats.ErrNoResponders)
	s.Shutdown()
	for nc.Status() == nats.CONNECTED {
		<-time.After(time.Millisecond)
	}
	go func() {
		for n, _ := nc.Buffered(); n <= 0; n, _ = nc.Buffered() {
			<-time.After(time.Millisecond)
		}
		nc.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = denials.Request(ctx, nc, nats.NewMsg("hold"))
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	assert.Less(t, time.Since(start), 2*time.Second)
}
