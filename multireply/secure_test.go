package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/multireply/variants"
)

// program runs the multireply command line through cli.Exec as main does,
// with the environment vars, and returns the exit code, stdout and stderr.
func program(args []string, vars map[string]string) (int, string, string) {
	var cfg Config
	fs, check := flags(&cfg)
	var stdout, stderr clitest.Buffer
	code := cli.Exec(fs, args, check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, &stdout)
	}, func(k string) string { return vars[k] }, &stderr, cli.SecureWith(cfg.Lockdown))
	return code, stdout.String(), stderr.String()
}

// -secure: the whole scenario runs as two users, each allowed only its
// part, in every variant: every reply arrives (allow_responses lets each
// responder connection answer as often as it must, also when 150
// responders share 100 connections) and nothing but the -secure line goes
// to stderr: no denial anywhere.
func TestSecure(t *testing.T) {
	tests := []struct {
		args string
		want string // the end of the timeline line
	}{
		{args: "-max 5", want: "5 replies, stopped: max reached"},
		// The sentinel normally comes last; on a loaded machine it may
		// overtake a reply, so only the reason is checked.
		{args: "-sentinel", want: "stopped: sentinel"},
		// 150 responders share 100 connections: 2 replies on one.
		{args: "-responders 150 -max 150", want: "150 replies, stopped: max reached"},
	}
	for _, variant := range variants.Names {
		for _, tc := range tests {
			t.Run(variant+" "+tc.args, func(t *testing.T) {
				args := append([]string{"-secure", "-variant", variant, "-delay", "0", "-timeout", "1m"}, strings.Fields(tc.args)...)
				code, stdout, stderr := program(args, nil)
				assert.Equal(t, cli.ExitOK, code, stderr)
				assert.Contains(t, stdout, tc.want)
				assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
				assert.Contains(t, stderr, "-secure: an embedded nats-server")
			})
		}
	}
	t.Run("discover", func(t *testing.T) {
		code, stdout, stderr := program([]string{"-secure", "-discover"}, nil)
		assert.Equal(t, cli.ExitOK, code, stderr)
		assert.Contains(t, stdout, "$SRV.INFO.greeter: 3 answers")
		assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	})
	t.Run("expect", func(t *testing.T) {
		code, stdout, stderr := program([]string{"-secure", "-expect", "-kill", "1", "-timeout", "1s"}, nil)
		assert.Equal(t, cli.ExitOK, code, stderr)
		assert.Contains(t, stdout, "4 replies, stopped: deadline")
		assert.Contains(t, stdout, "missing: instance-1 (id ")
		assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	})
}

// AllowResponses is the least allow_responses max that lets a connection
// with k subscriptions answer one request k times: with one less, a reply
// is denied.
func TestAllowResponses(t *testing.T) {
	for _, k := range []int{1, 2, 3, 5} {
		for _, maxReplies := range []int{AllowResponses(k) - 1, AllowResponses(k)} {
			if maxReplies == 0 {
				continue // 0 is the default, 1
			}
			t.Run(fmt.Sprintf("k=%d max=%d", k, maxReplies), func(t *testing.T) {
				env, err := cli.EmbeddedSecure("multireply", cli.Lockdown{Service: []string{"svc"}, MaxReplies: maxReplies})
				require.NoError(t, err)
				var stderr clitest.Buffer
				env.Stderr = &stderr
				t.Cleanup(func() { _ = env.Close() })
				rc, err := env.ConnectAs(cli.Responder, "responders")
				require.NoError(t, err)
				rs := make([]Responder, k)
				for i := range rs {
					rs[i] = Responder{Name: fmt.Sprintf("r%d", i+1)}
				}
				_, err = Serve(context.Background(), rc, "svc", rs)
				require.NoError(t, err)
				nc, err := env.ConnectAs(cli.Requester, "requester")
				require.NoError(t, err)
				// A denied reply is never sent: the gather has the others,
				// and the last thing the responder connection hears back
				// (after a flush) is its violation.
				res, err := gather.Gather(context.Background(), gather.Inbox{Conn: nc, Denials: variants.Hook{}}, "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(k), gather.Stall(200*time.Millisecond))
				require.NoError(t, err)
				require.NoError(t, rc.Flush())
				if maxReplies >= AllowResponses(k) {
					assert.Equal(t, k, res.Count)
					assert.Equal(t, gather.StopMax, res.Reason)
					assert.NotContains(t, stderr.String(), "ermissions violation")
					return
				}
				assert.Less(t, res.Count, k)
			})
		}
	}
}

// A gather whose request publish or inbox subscription the server denies
// ends at once (its deadline is an hour away) with an error wrapping
// nats.ErrPermissionViolation that names the subject, in every variant,
// and the denial is not also printed by the connection's error handler.
// The connection stays usable: the next, allowed, gather succeeds.
func TestGatherDenied(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		prefix  string // the requester's inbox prefix ("": its own)
		denied  string // in the error
	}{
		{name: "publish", subject: "not.allowed", denied: `Publish to "not.allowed"`},
		{name: "inbox", subject: "svc", prefix: "_INBOX", denied: `Subscription to "_INBOX.`},
		{name: "another user's inbox prefix", subject: "svc", prefix: "_INBOX_other", denied: `Subscription to "_INBOX_other.`},
	}
	for _, tc := range tests {
		for _, variant := range variants.Names {
			t.Run(tc.name+"/variant="+variant, func(t *testing.T) {
				env, err := cli.EmbeddedSecure("multireply", cli.Lockdown{Service: []string{"svc"}})
				require.NoError(t, err)
				var stderr clitest.Buffer
				env.Stderr = &stderr
				t.Cleanup(func() { _ = env.Close() })
				rc, err := env.ConnectAs(cli.Responder, "responders")
				require.NoError(t, err)
				_, err = Serve(context.Background(), rc, "svc", []Responder{{Name: "r1"}})
				require.NoError(t, err)
				var opts []nats.Option
				if tc.prefix != "" {
					opts = append(opts, nats.CustomInboxPrefix(tc.prefix))
				}
				nc, err := env.ConnectAs(cli.Requester, "requester", opts...)
				require.NoError(t, err)
				v, release, err := variants.New(variant, nc)
				if variant == "shared" && err != nil {
					// The Mux subscribes its inbox when it is made.
					require.ErrorIs(t, err, nats.ErrPermissionViolation)
					assert.Contains(t, err.Error(), tc.denied)
					assert.NotContains(t, stderr.String(), "ermissions violation")
					return
				}
				require.NoError(t, err)
				defer func() { _ = release() }()

				res, err := gather.Gather(context.Background(), v, tc.subject, nil, gather.Timeout(deniedTimeout))
				require.ErrorIs(t, err, nats.ErrPermissionViolation)
				assert.ErrorIs(t, err, denials.ErrDenied)
				assert.Contains(t, err.Error(), tc.denied)
				assert.Equal(t, gather.StopFailed, res.Reason)
				assert.Zero(t, res.Count)
				// Every violation the server sent has been read by now.
				require.NoError(t, nc.Flush())
				assert.NotContains(t, stderr.String(), "ermissions violation", "the denial is the gather's error, not also a printed line")

				if tc.prefix == "" {
					res, err = gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(1))
					require.NoError(t, err)
					assert.Equal(t, 1, res.Count)
				}
			})
		}
	}
}

// deniedTimeout is the deadline of a gather that the server denies: an
// hour, so that only a prompt denial lets the test end.
const deniedTimeout = time.Hour

// TestLockedDownConfig loads security/locked-down.conf, the file the README
// documents, exactly as nats-server -c would, and runs the program's halves
// against it, each as its user, with credentials from the environment:
// the requester gathers in every variant; another user cannot read the
// requester's inboxes; a user that may not serve gather.demo fails at its
// start. A denial is one line and exit 1, never a silent deadline.
func TestLockedDownConfig(t *testing.T) {
	passwords, as := clitest.LockedDown(t, "../security/locked-down.conf")

	// The responder half, as the program's -serve runs it, and the micro
	// service instances of -discover -serve.
	for _, cfg := range []Config{
		{Responders: 5, Sentinel: true, Mode: cli.Mode{Serve: true}},
		{Discover: true, Mode: cli.Mode{Serve: true}},
	} {
		creds, err := cli.LoadCredentials("", func(k string) string { return as("responder", "")[k] })
		require.NoError(t, err)
		env := cli.FromCredentials("multireply", creds)
		var serveErr clitest.Buffer
		env.Stderr = &serveErr
		ctx, cancel := context.WithCancel(context.Background())
		out := clitest.NewFirstWrite()
		done := make(chan error, 1)
		go func() { done <- Run(ctx, env, cfg, out) }()
		t.Cleanup(func() {
			cancel()
			assert.NoError(t, <-done)
			assert.NoError(t, env.Close())
			assert.Empty(t, serveErr.String(), "the responders were never denied anything")
		})
		select {
		case <-out.Ready: // serving
		case err := <-done:
			t.Fatalf("-serve ended: %v", err)
		}
	}

	type row struct {
		name   string
		vars   map[string]string
		args   string
		want   string // in stdout
		denied string // else: the subject of the one-line denial
	}
	var tests []row
	for _, variant := range variants.Names {
		v := " -variant " + variant
		d := " -timeout " + deniedTimeout.String()
		tests = append(tests,
			row{name: "requester with its prefix/" + variant, vars: as("requester", cli.InboxPrefix), args: "-request -sentinel -timeout 1m" + v, want: "stopped: sentinel"},
			row{name: "discover/" + variant, vars: as("requester", cli.InboxPrefix), args: "-request -discover" + v, want: "$SRV.INFO.greeter: 3 answers"},
			row{name: "another requester with its own prefix/" + variant, vars: as("other", "_INBOX_other"), args: "-request -sentinel -timeout 1m" + v, want: "stopped: sentinel"},
			row{name: "another requester reading the requester's inboxes/" + variant, vars: as("other", cli.InboxPrefix), args: "-request" + d + v, denied: `Subscription to "` + cli.InboxPrefix + "."},
			row{name: "requester without its prefix/" + variant, vars: as("requester", ""), args: "-request" + d + v, denied: `Subscription to "_INBOX.`},
			row{name: "responder sending requests/" + variant, vars: as("responder", ""), args: "-request" + d + v, denied: `Subscription to "_INBOX.`},
		)
	}
	tests = append(tests, row{name: "requester serving", vars: as("requester", cli.InboxPrefix), args: "-serve", denied: `Subscription to "gather.demo"`})
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
			// The shared variant's Mux subscribes its inbox when it is
			// made, before any gather: a denied inbox fails there, with no
			// picture of a gather.
			muxInbox := strings.HasSuffix(tc.name, "/shared") && strings.HasPrefix(tc.denied, "Subscription")
			if strings.Contains(tc.args, "-request") && !muxInbox {
				assert.Contains(t, stdout, "0 replies, stopped: failed", "the picture, then the error")
			}
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			assert.Contains(t, stderr, "ermissions violation")
			assert.Contains(t, stderr, tc.denied)
		})
	}
}
