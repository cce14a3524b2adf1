package denials_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
)

// A denied inbox subscription fails each request within a round trip, also
// the ones after the first (nats.go's own request mux, subscribed once and
// denied, would make every later request time out).
func TestRequestInboxDenied(t *testing.T) {
	env, stderr := clitest.SecureEnv(t)
	svc, err := env.ConnectAs(cli.Responder, "service")
	require.NoError(t, err)
	clitest.Echo(t, svc)
	// A requester that forgot its inbox prefix: the default _INBOX. is
	// not its to read.
	req, err := env.ConnectAs(cli.Requester, "requester", nats.CustomInboxPrefix("_INBOX"))
	require.NoError(t, err)
	for range 3 {
		_, err := denials.Request(context.Background(), req, nats.NewMsg("svc.a"))
		require.Error(t, err)
		assert.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.Contains(t, err.Error(), `Subscription to "_INBOX.`)
		assert.NotErrorIs(t, err, context.DeadlineExceeded)
	}
	assert.NotContains(t, stderr.String(), "iolation", "each denial is the request's error, not also a printed line")
}

// SubscribeChecked: a responder's subscription its user may not make
// fails at once, naming the subject and queue group, and is not also
// printed; an allowed one passes. Watch reports a denied publish.
func TestSubscribeCheckedAndWatch(t *testing.T) {
	env, stderr := clitest.SecureEnv(t)
	req, err := env.ConnectAs(cli.Requester, "requester")
	require.NoError(t, err)
	svc, err := env.ConnectAs(cli.Responder, "service")
	require.NoError(t, err)

	tests := []struct {
		name   string
		nc     *nats.Conn
		queue  string
		denied string
	}{
		{name: "responder serves", nc: svc},
		{name: "responder serves in a queue group", nc: svc, queue: "q"},
		{name: "requester serves", nc: req, denied: `Subscription to "svc.*"`},
		{name: "requester serves in a queue group", nc: req, queue: "q", denied: `Subscription to "svc.*" using queue "q"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := denials.SubscribeChecked(context.Background(), tc.nc, "svc.*", tc.queue, func() (*nats.Subscription, error) {
				return tc.nc.QueueSubscribeSync("svc.*", tc.queue)
			})
			if tc.denied == "" {
				require.NoError(t, err)
				require.NoError(t, sub.Unsubscribe())
				return
			}
			assert.Nil(t, sub)
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.ErrorIs(t, err, denials.ErrDenied)
			assert.Contains(t, err.Error(), tc.denied)
		})
	}

	got := make(chan error, 1)
	stop := denials.Watch(svc, func(err error) { got <- err }, []string{"elsewhere"}, nil)
	require.NoError(t, svc.Publish("elsewhere", nil))
	err = <-got
	stop()
	require.ErrorIs(t, err, nats.ErrPermissionViolation)
	assert.ErrorIs(t, err, denials.ErrDenied)
	assert.Contains(t, err.Error(), `Publish to "elsewhere"`)

	// Nothing printed: each denial was returned. (A flush on each
	// connection first: any violation not claimed would be printed by now.)
	require.NoError(t, req.Flush())
	require.NoError(t, svc.Flush())
	assert.NotContains(t, stderr.String(), "iolation")
}
