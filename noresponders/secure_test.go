package main

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
)

// program runs the noresponders command line through cli.Exec as main
// does, with the environment vars, and returns the exit code, stdout and
// stderr.
func program(args []string, vars map[string]string) (int, string, string) {
	var cfg Config
	fs, check := flags(&cfg)
	var stdout, stderr clitest.Buffer
	code := cli.Exec(fs, args, check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, &stdout)
	}, func(k string) string { return vars[k] }, &stderr, cli.Secure(Lockdown))
	return code, stdout.String(), stderr.String()
}

// -secure: the whole scenario, -silent too, runs as two users, each allowed
// only its part; nothing but the -secure line goes to stderr.
func TestSecure(t *testing.T) {
	code, stdout, stderr := program([]string{"-secure", "-silent", "-timeout", "1s"}, nil)
	assert.Equal(t, cli.ExitOK, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 4, stdout)
	assert.Equal(t, "hello, joe", lines[0])
	assert.True(t, strings.HasPrefix(lines[2], "no responders: "), lines[2])
	assert.True(t, strings.HasPrefix(lines[3], "timeout: "), lines[3])
	assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	assert.Contains(t, stderr, "-secure: an embedded nats-server")
}

// TestLockedDownConfig loads security/locked-down.conf, the file the README
// documents, as nats-server -c would, and runs the program's halves against
// it, each as its user, with credentials from the environment.
func TestLockedDownConfig(t *testing.T) {
	passwords, as := clitest.LockedDown(t, "../security/locked-down.conf")

	tests := []struct {
		name   string
		vars   map[string]string
		want   []string // stdout's lines, by prefix
		denied string   // else: the subject of the one-line denial
	}{
		{name: "requester with its prefix", vars: as("requester", cli.InboxPrefix), want: []string{"hello, joe", "no responders: ", "timeout: "}},
		{name: "another requester reading the requester's inboxes", vars: as("other", cli.InboxPrefix), denied: `Subscription to "` + cli.InboxPrefix + "."},
		{name: "requester without its prefix", vars: as("requester", ""), denied: `Subscription to "_INBOX.`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The responder half, as the program's -serve -silent runs it.
			creds, err := cli.LoadCredentials("", func(k string) string { return as("responder", "")[k] })
			require.NoError(t, err)
			env := cli.FromCredentials("noresponders", creds)
			var serveErr clitest.Buffer
			env.Stderr = &serveErr
			ctx, cancel := context.WithCancel(context.Background())
			out := clitest.NewFirstWrite()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, env, Config{Silent: true, Mode: cli.Mode{Serve: true}}, out) }()
			defer func() {
				cancel()
				assert.NoError(t, <-done)
				assert.NoError(t, env.Close())
				assert.Empty(t, serveErr.String(), "the responder was never denied anything")
			}()
			select {
			case <-out.Ready: // serving
			case err := <-done:
				t.Fatalf("-serve ended: %v", err)
			}

			code, stdout, stderr := program([]string{"-request", "-silent", "-timeout", "1s"}, tc.vars)
			for _, pw := range passwords {
				assert.NotContains(t, stderr, pw)
			}
			if tc.denied == "" {
				assert.Equal(t, cli.ExitOK, code, stderr)
				lines := strings.Split(strings.TrimSpace(stdout), "\n")
				require.Len(t, lines, len(tc.want), stdout)
				for i, want := range tc.want {
					assert.True(t, strings.HasPrefix(lines[i], want), "line %d: %q", i, lines[i])
				}
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
// the subject, not after its timeout, and is not also printed.
func TestAskDenied(t *testing.T) {
	env, err := cli.EmbeddedSecure("noresponders", Lockdown)
	require.NoError(t, err)
	var stderr clitest.Buffer
	env.Stderr = &stderr
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	nc, err := env.ConnectAs(cli.Requester, "requester")
	require.NoError(t, err)
	for _, subject := range []string{"other.joe", "greet.joe.too"} {
		_, _, err = Ask(context.Background(), nc, subject, 1<<62)
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.NotErrorIs(t, err, nats.ErrTimeout)
		assert.Contains(t, err.Error(), `Publish to "`+subject+`"`)
	}
	assert.Empty(t, stderr.String())
}

// A -serve whose user may not take the requests fails at its start, one
// line naming the subject, instead of serving nothing.
func TestServeDenied(t *testing.T) {
	_, as := clitest.LockedDown(t, "../security/locked-down.conf")
	code, stdout, stderr := program([]string{"-serve"}, as("requester", ""))
	assert.Equal(t, cli.ExitFailure, code)
	assert.Empty(t, stdout)
	assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
	assert.Contains(t, stderr, `Permissions Violation for Subscription to "greet.*"`)
	assert.NotContains(t, stderr, "req-Pw-1")
}
