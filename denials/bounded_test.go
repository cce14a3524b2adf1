package denials_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// The denial watch holds per-request and per-subject state only while it
// is in flight (or, for probe inboxes, in a cache of probeAnswerKept):
// thousands of requests, checks and probes to distinct subjects, however
// they end (answered, no responders, denied with the violation read as the
// connection's last error while the error handler is someone else's), and
// thousands of connections, leave it as it was.
func TestDenialWatchBounded(t *testing.T) {
	env, _ := clitest.SecureEnv(t)
	svc, err := env.ConnectAs(cli.Responder, "service")
	require.NoError(t, err)
	_, err = svc.Subscribe("svc.*", func(m *nats.Msg) {
		if !probe.Answer(m, "svc") {
			_ = m.Respond(nil)
		}
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	req, err := env.ConnectAs(cli.Requester, "requester")
	require.NoError(t, err)
	// A requester whose inbox prefix its user may not read, and whose error
	// handler is its own: each denial is read as the connection's last
	// error before any handler runs.
	denied, err := env.ConnectAs(cli.Requester, "denied", nats.CustomInboxPrefix("_INBOX"))
	require.NoError(t, err)
	denied.SetErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	// A plain server, where nobody serves "nobody.*".
	plain := testserver.New(t)
	open, err := nats.Connect(plain.ClientURL())
	require.NoError(t, err)
	t.Cleanup(open.Close)
	_, err = denials.Request(context.Background(), open, nats.NewMsg("nobody"))
	require.ErrorIs(t, err, nats.ErrNoResponders)
	waiters0, hooked0, probes0 := denials.DispatcherSizes()

	const n = 2000
	tests := []struct {
		name string
		do   func(i int) error
		want error
	}{
		{name: "answered", do: func(i int) error {
			_, err := denials.Request(context.Background(), req, nats.NewMsg("svc."+strconv.Itoa(i)))
			return err
		}},
		{name: "no responders", do: func(i int) error {
			_, err := denials.Request(context.Background(), open, nats.NewMsg("nobody."+strconv.Itoa(i)))
			return err
		}, want: nats.ErrNoResponders},
		{name: "publish denied", do: func(i int) error {
			_, err := denials.Request(context.Background(), req, nats.NewMsg("none."+strconv.Itoa(i)))
			return err
		}, want: denials.ErrDenied}, // the requester may publish to svc.* only
		{name: "inbox denied", do: func(i int) error {
			_, err := denials.Request(context.Background(), denied, nats.NewMsg("svc."+strconv.Itoa(i)))
			return err
		}, want: denials.ErrDenied},
		{name: "publish checked, denied", do: func(i int) error {
			return denials.PublishChecked(context.Background(), svc, nats.NewMsg("elsewhere."+strconv.Itoa(i)))
		}, want: denials.ErrDenied},
		{name: "probes", do: func(i int) error {
			_, err := probe.Await(context.Background(), req, "svc."+strconv.Itoa(i), probe.AnyResponder(), time.Minute)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range n {
				err := tc.do(i)
				if tc.want == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tc.want)
				}
			}
			waiters, hooked, probes := denials.DispatcherSizes()
			assert.Equal(t, waiters0, waiters, "waiters")
			assert.Equal(t, hooked0, hooked, "hooked connections")
			assert.LessOrEqual(t, probes, probes0+denials.ProbeAnswerKept, "probe inboxes")
		})
	}

	t.Run("connections", func(t *testing.T) {
		open.Close()
		for range n / 10 {
			nc, err := nats.Connect(plain.ClientURL())
			require.NoError(t, err)
			_, err = denials.Request(context.Background(), nc, nats.NewMsg("nobody"))
			require.ErrorIs(t, err, nats.ErrNoResponders)
			nc.Close()
		}
		// Each new connection's hook forgot the ones closed before it
		// (open too); the last one is kept until the next.
		_, hooked, _ := denials.DispatcherSizes()
		assert.Equal(t, hooked0, hooked, "closed connections are forgotten")
	})
}
