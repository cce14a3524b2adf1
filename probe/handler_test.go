// The middleware: what Handler and Skip do with a probe and with a request.

package probe_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
	"reqreply/probe"
)

// TestMiddleware: Handler answers a probe with its name (payload and
// ResponderHeader) and Skip drops it,
// neither passing it on; both pass a request to the handler they wrap.
func TestMiddleware(t *testing.T) {
	s := testserver.New(t)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	answer := func(m *nats.Msg) { _ = m.Respond([]byte("answer")) }
	tests := []struct {
		name      string
		handler   nats.MsgHandler
		probeWant string // "" for no answer (the probe times out)
	}{
		{name: "Handler", handler: probe.Handler("svc-1", answer), probeWant: "svc-1"},
		{name: "Skip", handler: probe.Skip(answer)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			subject := "mw." + tc.name
			sub, err := nc.Subscribe(subject, tc.handler)
			require.NoError(t, err)
			t.Cleanup(func() { _ = sub.Unsubscribe() })
			require.NoError(t, nc.Flush())

			reply, err := nc.Request(subject, nil, time.Second)
			require.NoError(t, err)
			assert.Equal(t, "answer", string(reply.Data), "a request reaches the handler")

			p := nats.NewMsg(subject)
			p.Header.Set(probe.Header, "1")
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			reply, err = nc.RequestMsgWithContext(ctx, p)
			if tc.probeWant == "" {
				assert.ErrorIs(t, err, context.DeadlineExceeded, "a skipped probe is not answered")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.probeWant, string(reply.Data), "a probe never reaches the handler")
			assert.Equal(t, tc.probeWant, reply.Header.Get(probe.ResponderHeader), "the answer names its responder as a gather reads it")
		})
	}
}
