package main

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newEnv starts a fresh embedded server for one test or benchmark and
// returns an Env on it, drained and stopped when the test ends.
func newEnv(tb testing.TB) *cli.Env {
	tb.Helper()
	_, env := newServerEnv(tb)
	return env
}

// newServerEnv is newEnv that also returns the server, for tests that read
// its state.
func newServerEnv(tb testing.TB) (*server.Server, *cli.Env) {
	tb.Helper()
	s := testserver.New(tb)
	env := cli.NewEnv("queuegroup", s.ClientURL())
	tb.Cleanup(func() { require.NoError(tb, env.Close()) })
	return s, env
}
