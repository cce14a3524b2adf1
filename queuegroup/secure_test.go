package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/probe"
)

// program runs the queuegroup command line through cli.Exec as main does,
// with the environment vars, and returns the exit code, stdout and stderr.
func program(args []string, vars map[string]string) (int, string, string) {
	cfg := DefaultConfig()
	fs, check := flags(&cfg)
	var stdout, stderr clitest.Buffer
	code := cli.Exec(fs, args, check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, &stdout)
	}, func(k string) string { return vars[k] }, &stderr, secure(&cfg))
	return code, stdout.String(), stderr.String()
}

// -secure: every demo on one server runs as two users, each allowed only
// its part, and shows what it shows without it; nothing but the -secure
// line goes to stderr (no denial anywhere).
func TestSecure(t *testing.T) {
	tests := []struct {
		args string
		want string // in stdout
	}{
		{args: "-requests 40 -concurrency 8", want: "verified: 40 requests"},
		{args: "-demo mixed -requests 20", want: "verified: 20 requests, 40 replies"},
		{args: "-demo drain -requests 30 -concurrency 4", want: "verified: 30 requests"},
		{args: "-demo scale -requests 30", want: "verified: 30 requests"},
		{args: "-demo die -requests 60 -retry -timeout 300ms", want: "retry: re-sent"},
		{args: "-demo gone -requests 10", want: "not after the 1s timeout"},
		{args: "-demo slow -requests 20 -workers 2", want: "queue groups pick members at random"},
		{args: "-demo micro -requests 30 -concurrency 4", want: "$SRV.STATS agrees"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			code, stdout, stderr := program(append([]string{"-secure"}, strings.Fields(tc.args)...), nil)
			assert.Equal(t, cli.ExitOK, code, "%s\n%s", stdout, stderr)
			assert.Contains(t, stdout, tc.want)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
			assert.Contains(t, stderr, "-secure: an embedded nats-server")
		})
	}
}

// secureEnv starts an embedded server locked down as lock and returns an
// Env on it whose stderr is the returned buffer (what the Env's error
// handler prints: nothing, when every denial is somebody's error).
func secureEnv(t *testing.T, lock cli.Lockdown) (*cli.Env, *clitest.Buffer) {
	t.Helper()
	env, err := cli.EmbeddedSecure("queuegroup", lock)
	require.NoError(t, err)
	var stderr clitest.Buffer
	env.Stderr = &stderr
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	return env, &stderr
}

// A queue-group load whose publish or inbox subscription the server denies
// ends with an error wrapping nats.ErrPermissionViolation that names the
// subject, after one request at most (the first is sent alone and checked),
// long before its one-hour timeout; the Env prints nothing more.
func TestLoadDenied(t *testing.T) {
	tests := []struct {
		name    string
		service string        // what the lockdown allows
		opts    []nats.Option // the requester's, after its part's
		load    LoadConfig
		denied  string // in the error
		sent    int    // requests sent before the denial ended the run
	}{
		{
			name: "publish", service: "elsewhere.>",
			load:   LoadConfig{Subject: Subject, Requests: 50, Concurrency: 1},
			denied: `Publish to "` + Subject + `"`, sent: 1,
		},
		{
			name: "publish, 16 in flight, retry", service: "elsewhere.>",
			load:   LoadConfig{Subject: Subject, Requests: 50, Concurrency: 16, Retry: true},
			denied: `Publish to "` + Subject + `"`, sent: 1,
		},
		{
			name: "inbox", service: Subject, opts: []nats.Option{nats.CustomInboxPrefix("_INBOX")},
			load:   LoadConfig{Subject: Subject, Requests: 50, Concurrency: 16},
			denied: `Subscription to "_INBOX.`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, stderr := secureEnv(t, cli.Lockdown{Service: []string{tc.service}})
			nc, err := env.ConnectAs(cli.Requester, "requester", tc.opts...)
			require.NoError(t, err)
			tc.load.Timeout = time.Hour
			// Far longer than a round trip; a load that waited for its
			// requests' timeout would end here instead.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for range 2 { // also on a connection that has been denied once
				res, err := Load(ctx, nc, tc.load)
				require.ErrorIs(t, err, nats.ErrPermissionViolation)
				assert.ErrorIs(t, err, denials.ErrDenied)
				assert.NotErrorIs(t, err, context.DeadlineExceeded)
				assert.Contains(t, err.Error(), tc.denied)
				if tc.sent == 0 {
					assert.Nil(t, res, "nothing was sent")
					continue
				}
				require.NotNil(t, res)
				assert.Equal(t, tc.load.Requests-tc.sent, res.Unsent, "only the first request went out")
				assert.Zero(t, res.Answered)
			}
			require.NoError(t, env.Close())
			assert.Empty(t, stderr.String(), "the denial is the load's error, not also a printed line")
		})
	}
}

// A member, a micro instance or a requester's readiness probe that the
// server's permissions deny fails at once with nats.ErrPermissionViolation
// naming the subject, and the Env prints nothing more.
func TestPartsDenied(t *testing.T) {
	tests := []struct {
		name    string
		service []string
		run     func(ctx context.Context, env *cli.Env) error
		denied  string
	}{
		{
			name: "member", service: []string{"elsewhere.>"},
			run: func(_ context.Context, env *cli.Env) error {
				_, err := join(env, Subject, Group, "worker-1", MemberOptions{})
				return err
			},
			denied: `Subscription to "` + Subject + `" using queue "` + Group + `"`,
		},
		{
			name: "plain subscriber", service: []string{"elsewhere.>"},
			run: func(_ context.Context, env *cli.Env) error {
				_, err := join(env, Subject, "", "listener-1", MemberOptions{Silent: true})
				return err
			},
			denied: `Subscription to "` + Subject + `"`,
		},
		{
			name: "micro instance without $SRV", service: []string{MicroSubject},
			run: func(_ context.Context, env *cli.Env) error {
				_, err := startInstance(env, 0, "instance-1", 0)
				return err
			},
			denied: `Subscription to "$SRV.`,
		},
		{
			name: "probe publish", service: []string{"elsewhere.>"},
			run: func(ctx context.Context, env *cli.Env) error {
				nc, err := connectRequester(env)
				if err != nil {
					return err
				}
				return awaitMembers(ctx, env, &bytes.Buffer{}, nc, Config{Timeout: time.Hour}, probe.AnyResponder())
			},
			denied: `Publish to "` + Subject + `"`,
		},
		{
			name: "probe inbox", service: []string{Subject},
			run: func(ctx context.Context, env *cli.Env) error {
				nc, err := env.ConnectAs(cli.Requester, "requester", nats.CustomInboxPrefix("_INBOX"))
				if err != nil {
					return err
				}
				return awaitMembers(ctx, env, &bytes.Buffer{}, nc, Config{Timeout: time.Hour}, probe.AnyResponder())
			},
			denied: `Subscription to "_INBOX.`,
		},
		{
			name: "stats request", service: []string{MicroSubject},
			run: func(ctx context.Context, env *cli.Env) error {
				nc, err := connectRequester(env)
				if err != nil {
					return err
				}
				_, err = ReadStats(ctx, nc, nil, time.Hour)
				return err
			},
			denied: `Publish to "$SRV.STATS.` + MicroService + `"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, stderr := secureEnv(t, cli.Lockdown{Service: tc.service})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := tc.run(ctx, env)
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.NotErrorIs(t, err, context.DeadlineExceeded)
			assert.Contains(t, err.Error(), tc.denied)
			require.NoError(t, env.Close())
			assert.Empty(t, stderr.String(), "the denial is the error, not also a printed line")
		})
	}
}

// TestLockedDownConfig loads security/locked-down.conf, the file the README
// documents, exactly as nats-server -c would, and runs the program's halves
// against it, each as its user, with credentials from the environment: the
// members and the micro instances as the responder, the requests as the
// requester; every other user or prefix is denied, in one line.
func TestLockedDownConfig(t *testing.T) {
	passwords, as := clitest.LockedDown(t, "../security/locked-down.conf")

	// The responder halves, as the program's -serve runs them: the workers
	// and the micro instances.
	for _, demo := range []Demo{DemoShare, DemoMicro} {
		creds, err := cli.LoadCredentials("", func(k string) string { return as("responder", "")[k] })
		require.NoError(t, err)
		env := cli.FromCredentials("queuegroup", creds)
		var serveErr clitest.Buffer
		env.Stderr = &serveErr
		ctx, cancel := context.WithCancel(context.Background())
		out := clitest.NewFirstWrite()
		done := make(chan error, 1)
		cfg := DefaultConfig()
		cfg.Demo, cfg.Mode.Serve = demo, true
		go func() { done <- Run(ctx, env, cfg, out) }()
		t.Cleanup(func() {
			cancel()
			assert.NoError(t, <-done)
			assert.NoError(t, env.Close())
			assert.Empty(t, serveErr.String(), "the responder was never denied anything")
		})
		select {
		case <-out.Ready: // serving
		case err := <-done:
			t.Fatalf("-serve -demo %s ended: %v", demo, err)
		}
	}

	tests := []struct {
		name   string
		vars   map[string]string
		args   string
		want   string // in stdout
		denied string // else: the subject of the one-line denial
	}{
		{name: "requester with its prefix", vars: as("requester", cli.InboxPrefix), args: "-request -requests 20 -concurrency 4", want: "every request answered exactly once"},
		{name: "requester, micro", vars: as("requester", cli.InboxPrefix), args: "-request -demo micro -requests 10", want: "$SRV.STATS." + MicroService + ", answered by 3 instances"},
		{name: "another requester with its own prefix", vars: as("other", "_INBOX_other"), args: "-request -requests 5", want: "every request answered exactly once"},
		{name: "another requester reading the requester's inboxes", vars: as("other", cli.InboxPrefix), args: "-request", denied: `Subscription to "` + cli.InboxPrefix + "."},
		{name: "requester without its prefix", vars: as("requester", ""), args: "-request", denied: `Subscription to "_INBOX.`},
		{name: "responder sending requests", vars: as("responder", ""), args: "-request", denied: `Subscription to "_INBOX.`},
		{name: "requester serving", vars: as("requester", cli.InboxPrefix), args: "-serve", denied: `Subscription to "` + Subject + `" using queue "` + Group + `"`},
		{name: "requester serving micro", vars: as("requester", cli.InboxPrefix), args: "-serve -demo micro", denied: `Subscription to "`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), tc.vars)
			for _, pw := range passwords {
				assert.NotContains(t, stdout+stderr, pw)
			}
			if tc.denied == "" {
				assert.Equal(t, cli.ExitOK, code, stderr)
				assert.Contains(t, stdout, tc.want)
				assert.Empty(t, stderr)
				return
			}
			assert.Equal(t, cli.ExitFailure, code)
			assert.NotContains(t, stdout, "verified")
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			assert.Contains(t, stderr, "ermissions violation")
			assert.Contains(t, stderr, tc.denied)
		})
	}

	// Another user cannot read the requester's replies: it may not
	// subscribe to the requester's inboxes, by any prefix of them.
	t.Run("another user subscribing to the requester's inboxes", func(t *testing.T) {
		for _, user := range []string{"other", "responder"} {
			nc, err := nats.Connect(as(user, "")["NATS_URL"], nats.UserInfo(user, passwords[user]))
			require.NoError(t, err)
			for _, subject := range []string{cli.InboxPrefix + ".>", cli.InboxPrefix + ".*", ">"} {
				_, err := denials.SubscribeChecked(context.Background(), nc, subject, "", func() (*nats.Subscription, error) {
					return nc.SubscribeSync(subject)
				})
				require.ErrorIs(t, err, nats.ErrPermissionViolation, "%s on %s", user, subject)
				assert.Contains(t, err.Error(), `Subscription to "`+subject+`"`)
			}
			nc.Close()
		}
	})
}

// Under -secure a member may answer each request once (allow_responses,
// max 1): a member that replies twice gets its second reply denied by the
// server, so the requester sees no duplicate, and the Env reports each
// denied reply, which nobody waits for, as it comes.
func TestSecureReplyOnce(t *testing.T) {
	env, stderr := secureEnv(t, Lockdown(DefaultConfig()))
	m, err := join(env, Subject, Group, "worker-1", MemberOptions{ReplyTwice: true})
	require.NoError(t, err)
	nc, err := connectRequester(env)
	require.NoError(t, err)
	const requests = 5
	res, err := Load(context.Background(), nc, LoadConfig{Subject: Subject, Requests: requests, Concurrency: 1, Timeout: time.Minute, Settle: settleAll(m)})
	require.NoError(t, err)
	assert.True(t, res.Exact(), "%d answered, %d duplicates", res.Answered, res.Duplicates)
	assert.Zero(t, res.Duplicates)
	require.NoError(t, env.Close())
	assert.Equal(t, requests, strings.Count(stderr.String(), "Permissions Violation for Publish to \""+cli.InboxPrefix+"."), stderr.String())
}
