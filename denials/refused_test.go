package denials_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
)

// A Request whose inbox prefix the server refuses as a reply subject (a
// reserved one: $JS.API.>, any JetStream domain's too) ends within one
// round trip with that refusal, not at its timeout, and nothing is
// printed; with an ordinary prefix it is answered.
func TestRequestRefusedReplyEndsAtOnce(t *testing.T) {
	s := testserver.New(t)
	env := cli.NewEnv("refused", s.ClientURL())
	stderr := &clitest.Buffer{}
	env.Stderr = stderr
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	svc, err := env.Connect("service")
	require.NoError(t, err)
	_, err = svc.Subscribe("svc", func(m *nats.Msg) { _ = m.Respond([]byte("hi")) })
	require.NoError(t, err)
	require.NoError(t, svc.Flush())

	const timeout = 10 * time.Second
	tests := []struct {
		prefix  string
		refused bool
	}{
		{prefix: "_INBOX_ok"},
		{prefix: "$JS.API.INBOX", refused: true},
		{prefix: "$JS.hub.API.INBOX", refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			nc, err := env.Connect("requester", nats.CustomInboxPrefix(tc.prefix))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			m, err := denials.Request(ctx, nc, nats.NewMsg("svc"))
			if !tc.refused {
				require.NoError(t, err)
				assert.Equal(t, "hi", string(m.Data))
				return
			}
			require.ErrorIs(t, err, denials.ErrDenied)
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.Contains(t, err.Error(), `"`+tc.prefix+`.`)
			assert.Less(t, time.Since(start), 2*time.Second, "the refusal must end the request, not its %v timeout", timeout)
			require.NoError(t, nc.Flush())
			assert.Empty(t, stderr.String(), "the refusal is the request's error, not also printed")
		})
	}
}
