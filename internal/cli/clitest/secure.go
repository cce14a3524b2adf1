package clitest

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
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
