package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"

	"reqreply/denials"
)

// A permissions violation stays a connection's last error, though it did
// not close anything: a program that then closes the connection itself
// (a demo's member leaving, a run ending on the denial) had the violation
// printed again as the close's reason, a second report of one denial.
func TestCloseAfterDenialSaysNothing(t *testing.T) {
	users := []*server.User{{Username: "mute", Password: "m", Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"nothing"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"svc"}},
	}}}
	srv := testserver.New(t, testserver.WithUsers(users...))
	for _, tc := range []struct {
		name    string
		claimed bool // a check claims the violation (its error reports it), else the handler prints it
	}{
		{name: "claimed by PublishChecked", claimed: true},
		{name: "printed by the handler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := NewEnv("deny", srv.ClientURL())
			var stderr syncBuffer
			env.Stderr = &stderr
			nc, err := env.Connect("responder", nats.UserInfo("mute", "m"))
			require.NoError(t, err)
			if tc.claimed {
				err = denials.PublishChecked(context.Background(), nc, &nats.Msg{Subject: "elsewhere"})
				require.ErrorIs(t, err, nats.ErrPermissionViolation)
			} else {
				require.NoError(t, nc.Publish("elsewhere", nil))
				require.NoError(t, nc.Flush())
			}
			require.ErrorIs(t, nc.LastError(), nats.ErrPermissionViolation)
			nc.Close() // the program's own close, no error of its own
			require.NoError(t, env.Close())
			want := 0
			if !tc.claimed {
				want = 1 // the handler's line, once
			}
			assert.Equal(t, want, strings.Count(stderr.String(), "Permissions Violation"), stderr.String())
			assert.NotContains(t, stderr.String(), "connection closed")
		})
	}
}
