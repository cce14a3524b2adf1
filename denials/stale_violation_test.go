package denials_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/testserver"
)

// startReloadable starts a server with the user req, whose permissions
// perms gives; reload swaps them on the running server (a config reload).
func startReloadable(t *testing.T, perms *server.Permissions) (url string, reload func(*server.Permissions)) {
	t.Helper()
	users := func(p *server.Permissions) testserver.Option {
		return testserver.WithUsers(&server.User{Username: "req", Password: "req", Permissions: p})
	}
	s, reloadOpts := testserver.NewReloadable(t, users(perms))
	return strings.Replace(s.ClientURL(), "nats://", "nats://req:req@", 1), func(p *server.Permissions) { reloadOpts(users(p)) }
}

// TestCheckedIgnoresEarlierViolations: SubscribeChecked and PublishChecked
// take a violation read as nc.LastError() after their flush as theirs only
// if nats.go recorded it during the check. LastError is sticky, so once a
// subject was denied and the operator then allowed it (a config reload),
// a later check of the same subject must pass, not report the old denial.
func TestCheckedIgnoresEarlierViolations(t *testing.T) {
	deny := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
	allow := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"_INBOX.>", "svc.x"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", "svc.x"}},
	}
	checks := []struct {
		name  string
		check func(ctx context.Context, nc *nats.Conn) error
	}{
		{name: "SubscribeChecked", check: func(ctx context.Context, nc *nats.Conn) error {
			sub, err := denials.SubscribeChecked(ctx, nc, "svc.x", "", func() (*nats.Subscription, error) { return nc.SubscribeSync("svc.x") })
			if err == nil {
				_ = sub.Unsubscribe()
			}
			return err
		}},
		{name: "SubscribeChecked, queue", check: func(ctx context.Context, nc *nats.Conn) error {
			sub, err := denials.SubscribeChecked(ctx, nc, "svc.x", "q", func() (*nats.Subscription, error) { return nc.QueueSubscribeSync("svc.x", "q") })
			if err == nil {
				_ = sub.Unsubscribe()
			}
			return err
		}},
		{name: "PublishChecked", check: func(ctx context.Context, nc *nats.Conn) error {
			return denials.PublishChecked(ctx, nc, nats.NewMsg("svc.x"))
		}},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			url, reload := startReloadable(t, deny)
			nc, err := nats.Connect(url)
			require.NoError(t, err)
			defer nc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.ErrorIs(t, tc.check(ctx, nc), nats.ErrPermissionViolation, "denied before the reload")
			reload(allow)
			require.NoError(t, tc.check(ctx, nc), "allowed after the reload; LastError still holds the old violation: %v", nc.LastError())
		})
	}
}
