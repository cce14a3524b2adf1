package clitest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// SecureLock is the lockdown of the tests' locked-down Envs: the service
// is svc.*.
var SecureLock = cli.Lockdown{Service: []string{"svc.*"}}

// SecureEnv starts a locked-down embedded server (cli.EmbeddedSecure with
// SecureLock) for one test, and returns an Env on it, whose Stderr is the
// returned Buffer; both are closed when the test ends.
func SecureEnv(t *testing.T) (*cli.Env, *Buffer) {
	t.Helper()
	env, err := cli.EmbeddedSecure("prog", SecureLock)
	require.NoError(t, err)
	var stderr Buffer
	env.Stderr = &stderr
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	return env, &stderr
}

// Echo serves svc.* on nc, answering each request with its subject, and
// flushes so that the server has the subscription.
func Echo(t *testing.T, nc *nats.Conn) {
	t.Helper()
	_, err := nc.Subscribe("svc.*", func(m *nats.Msg) { _ = m.Respond([]byte(m.Subject)) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

// RequireDenied asserts err is a permission denial naming subject.
func RequireDenied(t *testing.T, err error, subject string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, nats.ErrPermissionViolation)
	assert.ErrorIs(t, err, denials.ErrDenied)
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "the denial must end the request, not its deadline")
	assert.Contains(t, err.Error(), fmt.Sprintf("%q", subject))
}

// RunWithServer is a pattern package's TestMain: it starts the embedded
// nats-server the Examples connect to, sets NATS_URL to it, runs the
// tests, stops the server, and then checks that no goroutine is left. It
// returns the exit code.
func RunWithServer(m *testing.M) int {
	s, err := testserver.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the examples' server:", err)
		return 1
	}
	if err := os.Setenv("NATS_URL", s.ClientURL()); err != nil {
		testserver.Shutdown(s)
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	testserver.Shutdown(s)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}
