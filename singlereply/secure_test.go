package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
)

// program runs the singlereply command line through cli.Exec as main does,
// with the environment vars, and returns the exit code, stdout and stderr.
func program(args []string, vars map[string]string) (int, string, string) {
	var cfg Config
	fs, check := flags(&cfg)
	var stdout, stderr clitest.Buffer
	code := cli.Exec(fs, args, check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, &stdout)
	}, func(k string) string { return vars[k] }, &stderr, cli.Secure(Lockdown))
	return code, stdout.String(), stderr.String()
}

// -secure: the whole scenario runs as two users, each allowed only its
// part, and nothing but the -secure line goes to stderr.
func TestSecure(t *testing.T) {
	code, stdout, stderr := program([]string{"-secure"}, nil)
	assert.Equal(t, cli.ExitOK, code, stderr)
	assert.Equal(t, "hello, joe\nhello, sue\nhello, bob\n", stdout)
	assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	assert.Contains(t, stderr, "-secure: an embedded nats-server")
}

// TestLockedDownConfig loads security/locked-down.conf, the file the README
// documents, exactly as nats-server -c would, and runs the program's halves
// against it, each as its user, with credentials from the environment.
func TestLockedDownConfig(t *testing.T) {
	passwords, as := clitest.LockedDown(t, "../security/locked-down.conf")

	// The responder half, as the program's -serve runs it.
	creds, err := cli.LoadCredentials("", func(k string) string { return as("responder", "")[k] })
	require.NoError(t, err)
	env := cli.FromCredentials("singlereply", creds)
	var serveErr clitest.Buffer
	env.Stderr = &serveErr
	ctx, cancel := context.WithCancel(context.Background())
	out := clitest.NewFirstWrite()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, env, Config{Mode: cli.Mode{Serve: true}}, out) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, env.Close())
		assert.Empty(t, serveErr.String(), "the responder was never denied anything")
	})
	select {
	case <-out.Ready: // serving
	case err := <-done:
		t.Fatalf("-serve ended: %v", err)
	}

	tests := []struct {
		name   string
		vars   map[string]string
		args   string
		want   string // stdout
		denied string // else: the subject of the one-line denial
	}{
		{name: "requester with its prefix", vars: as("requester", cli.InboxPrefix), args: "-request ann bob", want: "hello, ann\nhello, bob\n"},
		{name: "another requester with its own prefix", vars: as("other", "_INBOX_other"), args: "-request ann", want: "hello, ann\n"},
		{name: "another requester reading the requester's inboxes", vars: as("other", cli.InboxPrefix), args: "-request ann", denied: `Subscription to "` + cli.InboxPrefix + "."},
		{name: "requester without its prefix", vars: as("requester", ""), args: "-request ann", denied: `Subscription to "_INBOX.`},
		{name: "responder sending requests", vars: as("responder", ""), args: "-request ann", denied: `Subscription to "_INBOX.`},
		{name: "requester serving", vars: as("requester", cli.InboxPrefix), args: "-serve", denied: `Subscription to "greet.*"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), tc.vars)
			for _, pw := range passwords {
				assert.NotContains(t, stderr, pw)
			}
			if tc.denied == "" {
				assert.Equal(t, cli.ExitOK, code, stderr)
				assert.Equal(t, tc.want, stdout)
				assert.Empty(t, stderr)
				return
			}
			assert.Equal(t, cli.ExitFailure, code)
			assert.Empty(t, stdout)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			assert.Contains(t, stderr, "ermissions violation")
			assert.Contains(t, stderr, tc.denied)
		})
	}
}

// A denied request fails at once with nats.ErrPermissionViolation naming
// the subject, not after its timeout.
func TestGreetDenied(t *testing.T) {
	env, err := cli.EmbeddedSecure("singlereply", cli.Lockdown{Service: []string{"other.*"}})
	require.NoError(t, err)
	var stderr bytes.Buffer
	env.Stderr = &stderr
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	nc, err := env.ConnectAs(cli.Requester, "requester")
	require.NoError(t, err)
	for range 2 {
		_, err = Greet(context.Background(), nc, "joe", 1<<62)
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.NotErrorIs(t, err, nats.ErrTimeout)
		assert.Contains(t, err.Error(), `Publish to "greet.joe"`)
	}
	assert.Empty(t, stderr.String(), "the denial is Greet's error, not also a printed line")
}
