package main

// Review findings in the shared variant (shared.go) and the denial
// parsing it shares with internal/cli, written as tests. Both are skipped
// until shared.go (and internal/cli/denied.go) are fixed: the performance
// work on shared.go is under way on another branch.

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startReloadable starts a server with the users svc (anything) and req,
// whose permissions perms gives; reload swaps req's permissions on the
// running server (a config reload, as nats-server --signal reload does).
func startReloadable(t *testing.T, perms *server.Permissions) (url func(user string) string, reload func(*server.Permissions)) {
	t.Helper()
	users := func(p *server.Permissions) []*server.User {
		return []*server.User{{Username: "svc", Password: "svc"}, {Username: "req", Password: "req", Permissions: p}}
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Users: users(perms)}
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(s.Shutdown)
	port := s.Addr().(*net.TCPAddr).Port
	url = func(user string) string { return "nats://" + user + ":" + user + "@127.0.0.1:" + strconv.Itoa(port) }
	reload = func(p *server.Permissions) {
		o := opts.Clone()
		o.Port = port
		o.Users = users(p)
		require.NoError(t, s.ReloadOptions(o))
	}
	return url, reload
}

// Denials after the Mux is made: a config reload that takes the inbox
// prefix away from the requester's user makes the server remove the Mux's
// "<inbox>.*" subscription and send "Permissions Violation for
// Subscription to ..." on the Mux's connection. Mux.denied looks only at
// publish violations, so the Mux goes on as if subscribed: every later
// gather is sent, answered by the responders, and ends at its deadline
// with no reply and no error ("0 replies, stopped: deadline"), the silence
// issue 9 was filed against. It should end (within a round trip, or at
// once for a gather started later) with an error wrapping
// nats.ErrPermissionViolation that names the inbox, as NewMux's does.
// The inbox and natsext variants subscribe (checked) per gather, so they
// fail promptly here already.
func TestReviewMuxInboxRevokedByReload(t *testing.T) {
	t.Skip("fails: shared.go: a reload revoking the Mux's <inbox>.* ends every later gather silently at its deadline (Mux.denied ignores subscription violations)")
	url, reload := startReloadable(t, nil)
	rnc, err := nats.Connect(url("svc"))
	require.NoError(t, err)
	t.Cleanup(rnc.Close)
	_, err = rnc.Subscribe("svc", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	require.NoError(t, err)
	require.NoError(t, rnc.Flush())

	var log errorLog
	nc, err := nats.Connect(url("req"), nats.ErrorHandler(log.handler))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	m, err := NewMux(nc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	res, err := Gather(context.Background(), m, "svc", nil, Timeout(time.Minute), MaxReplies(1))
	require.NoError(t, err)
	require.Equal(t, 1, res.Count)

	reload(&server.Permissions{Subscribe: &server.SubjectPermission{Deny: []string{"_INBOX.>"}}})
	// The server has sent the violation once the error handler has it.
	require.Eventually(t, func() bool { return len(log.all()) > 0 }, 10*time.Second, time.Millisecond)

	res, err = Gather(context.Background(), m, "svc", nil, Timeout(5*time.Second), MaxReplies(1))
	assert.ErrorIs(t, err, nats.ErrPermissionViolation, "%+v", res)
	assert.Equal(t, StopFailed, res.Reason)
}

// A subject with a double quote is a valid NATS subject (CheckSubject
// takes it; nats-server routes it), but nats-server writes it %q-quoted in
// its violation ("Publish to \"a\\\"b\""), and both Mux.denied
// (shared.go: the text up to the next quote) and cli's violationRe
// (`"([^"]+)"`, used by the inbox and natsext variants through
// cli.WatchDenials) read the subject as `a\`: the denial matches no
// gather, and the gather ends silently at its deadline instead of within
// a round trip; the violation is printed as unclaimed instead. The same
// holds for a subject with a byte %q escapes (a control character,
// invalid UTF-8). Reading the quoted subject with strconv.Unquote fixes
// both places.
func TestReviewDeniedSubjectWithQuote(t *testing.T) {
	t.Skip(`fails: shared.go Mux.denied and internal/cli violationRe misread a quoted (escaped) subject (a"b): the denied gather ends at its deadline`)
	url, _ := startReloadable(t, &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"ok"}}})
	for _, subject := range []string{`a"b`, "a\x01b"} {
		for _, variant := range Variants {
			t.Run(variant+"/"+subject, func(t *testing.T) {
				nc, err := nats.Connect(url("req"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
				require.NoError(t, err)
				t.Cleanup(nc.Close)
				v, release, err := NewVariant(variant, nc)
				require.NoError(t, err)
				t.Cleanup(func() { _ = release() })
				res, err := Gather(context.Background(), v, subject, nil, Timeout(5*time.Second))
				assert.ErrorIs(t, err, nats.ErrPermissionViolation, "%+v", res)
				assert.Equal(t, StopFailed, res.Reason)
			})
		}
	}
}
