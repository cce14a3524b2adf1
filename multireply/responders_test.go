// The demo responders' failures: a panic or an error in Work becomes an
// error reply.

package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// goleak checks, after all tests, that no goroutine is left.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newEnv starts a fresh embedded server for one test and returns an Env on
// it; its connections are drained and the server stopped when the test ends.
func newEnv(t testing.TB, opts ...testserver.Option) *cli.Env {
	t.Helper()
	env := cli.NewEnv("multireply", testserver.New(t, opts...).ClientURL())
	t.Cleanup(func() { _ = env.Close() })
	return env
}

// connect opens a connection for role on env.
func connect(t testing.TB, env *cli.Env, role string) *nats.Conn {
	t.Helper()
	nc, err := env.Connect(role)
	require.NoError(t, err)
	return nc
}

// A responder whose work panics or fails survives it and sends an error
// reply in micro's headers: every variant's gather gets it at once as a
// reply with ServiceError set, instead of one reply fewer at the deadline,
// and the responders still answer the next request.
func TestResponderWorkFails(t *testing.T) {
	env := newEnv(t)
	rc := connect(t, env, "responders")
	responders := []Responder{
		{Name: "ok"},
		{Name: "panics", Work: func(*nats.Msg) ([]byte, error) { panic("boom") }},
		{Name: "fails", Work: func(*nats.Msg) ([]byte, error) { return nil, errors.New("out of stock") }},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Serve(ctx, rc, "svc", responders)
	require.NoError(t, err)
	nc := connect(t, env, "requester")
	for _, name := range variants.Names {
		v, release, err := variants.New(name, nc)
		require.NoError(t, err)
		defer func() { _ = release() }()
		t.Run("variant="+v.Name(), func(t *testing.T) {
			for round := range 2 { // the second round: the responders survived
				res, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(3))
				require.NoError(t, err, "round %d", round)
				require.Equal(t, gather.StopMax, res.Reason)
				got := map[string]string{}
				for _, r := range res.Replies {
					desc := ""
					if r.ServiceError != nil {
						assert.Equal(t, "500", r.ServiceError.Code)
						desc = r.ServiceError.Description
					}
					got[r.Responder] = desc
				}
				assert.Equal(t, "", got["ok"])
				assert.Contains(t, got["panics"], "responder panicked: boom")
				assert.Equal(t, "out of stock", got["fails"])
			}
		})
	}
}
