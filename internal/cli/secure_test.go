package cli_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
)

func TestLockdownAllowsTheRequestReply(t *testing.T) {
	env, stderr := clitest.SecureEnv(t)
	svc, err := env.ConnectAs(cli.Responder, "service")
	require.NoError(t, err)
	clitest.Echo(t, svc)
	req, err := env.ConnectAs(cli.Requester, "requester")
	require.NoError(t, err)

	assert.True(t, strings.HasPrefix(req.NewInbox(), cli.InboxPrefix+"."), "the requester's inboxes are under its prefix")
	for range 3 { // one inbox each, all allowed
		reply, err := denials.Request(context.Background(), req, nats.NewMsg("svc.a"))
		require.NoError(t, err)
		assert.Equal(t, "svc.a", string(reply.Data))
	}
	// nats.go's own request mux, "<prefix>.<nuid>.*", is allowed too: the
	// permission is "<prefix>.>", not "<prefix>.*".
	reply, err := req.Request("svc.b", nil, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "svc.b", string(reply.Data))
	assert.Empty(t, stderr.String())

	_, err = env.Connect("no part")
	assert.ErrorIs(t, err, cli.ErrNoPart)
}

func TestLockdownDenials(t *testing.T) {
	tests := []struct {
		name string
		// do runs the denied action on a requester and a responder
		// connection, a request served on svc.* being under way for the
		// responder (m); it returns the subject the error must name, and the error.
		do func(t *testing.T, req, svc *nats.Conn, m *nats.Msg) (subject string, err error)
	}{
		{"requester publishes outside the service", func(t *testing.T, req, _ *nats.Conn, _ *nats.Msg) (string, error) {
			_, err := denials.Request(context.Background(), req, nats.NewMsg("other.a"))
			return "other.a", err
		}},
		{"requester subscribes outside its prefix", func(t *testing.T, req, _ *nats.Conn, _ *nats.Msg) (string, error) {
			// nats.go's default _INBOX.> is not its prefix.
			sub, err := req.SubscribeSync("_INBOX.x")
			require.NoError(t, err)
			require.NoError(t, req.Flush())
			_, err = sub.NextMsg(time.Minute)
			return "_INBOX.x", fmt.Errorf("%w: %w", denials.ErrDenied, err)
		}},
		{"requester takes requests", func(t *testing.T, req, _ *nats.Conn, _ *nats.Msg) (string, error) {
			sub, err := req.SubscribeSync("svc.*")
			require.NoError(t, err)
			require.NoError(t, req.Flush())
			_, err = sub.NextMsg(time.Minute)
			return "svc.*", fmt.Errorf("%w: %w", denials.ErrDenied, err)
		}},
		{"responder reads the requester's inboxes", func(t *testing.T, _, svc *nats.Conn, _ *nats.Msg) (string, error) {
			sub, err := svc.SubscribeSync(cli.InboxPrefix + ".>")
			require.NoError(t, err)
			require.NoError(t, svc.Flush())
			_, err = sub.NextMsg(time.Minute)
			return cli.InboxPrefix + ".>", fmt.Errorf("%w: %w", denials.ErrDenied, err)
		}},
		{"responder publishes elsewhere", func(t *testing.T, _, svc *nats.Conn, _ *nats.Msg) (string, error) {
			return "svc.a", denials.PublishChecked(context.Background(), svc, nats.NewMsg("svc.a"))
		}},
		{"responder sends a request", func(t *testing.T, _, svc *nats.Conn, _ *nats.Msg) (string, error) {
			// Its inbox subscription goes first, so its denial comes first.
			_, err := denials.Request(context.Background(), svc, nats.NewMsg("svc.a"))
			require.Error(t, err)
			return regexp.MustCompile(`_INBOX\.[^"]+`).FindString(err.Error()), err
		}},
		{"responder answers twice", func(t *testing.T, _, svc *nats.Conn, m *nats.Msg) (string, error) {
			first := nats.NewMsg(m.Reply)
			first.Data = []byte("one")
			require.NoError(t, denials.PublishChecked(context.Background(), svc, first), "the first reply is allowed")
			second := nats.NewMsg(m.Reply)
			second.Data = []byte("two")
			return m.Reply, denials.PublishChecked(context.Background(), svc, second)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, stderr := clitest.SecureEnv(t)
			svc, err := env.ConnectAs(cli.Responder, "service")
			require.NoError(t, err)
			req, err := env.ConnectAs(cli.Requester, "requester")
			require.NoError(t, err)
			// A request under way, taken by the responder, so that it has
			// a reply subject it may use once.
			in, err := svc.SubscribeSync("svc.*")
			require.NoError(t, err)
			require.NoError(t, svc.Flush())
			inbox := req.NewInbox()
			replies, err := req.SubscribeSync(inbox)
			require.NoError(t, err)
			require.NoError(t, req.PublishRequest("svc.q", inbox, nil))
			m, err := in.NextMsg(time.Minute)
			require.NoError(t, err)

			subject, err := tc.do(t, req, svc, m)
			clitest.RequireDenied(t, err, subject)

			// The requester got no more than one reply.
			if tc.name == "responder answers twice" {
				first, err := replies.NextMsg(time.Minute)
				require.NoError(t, err)
				assert.Equal(t, "one", string(first.Data))
				require.NoError(t, req.Flush())
				n, _, err := replies.Pending()
				require.NoError(t, err)
				assert.Zero(t, n)
			}
			// A denial somebody waited for is theirs to report: the
			// connection's async handler printed nothing for it.
			if strings.HasPrefix(tc.name, "responder publishes") || strings.HasPrefix(tc.name, "responder answers") ||
				strings.HasPrefix(tc.name, "requester publishes") || strings.HasPrefix(tc.name, "responder sends") {
				assert.NotContains(t, stderr.String(), "iolation")
			}
		})
	}
}

// A denial nobody waits for, such as a responder's late reply, is printed
// by the connection's error handler, one line, masked.
func TestUnclaimedDenialPrinted(t *testing.T) {
	env, stderr := clitest.SecureEnv(t)
	svc, err := env.ConnectAs(cli.Responder, "service")
	require.NoError(t, err)
	require.NoError(t, svc.Publish("elsewhere", nil))
	require.NoError(t, svc.Flush())
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), `Publish to "elsewhere"`) }, time.Minute, time.Millisecond)
	assert.Equal(t, 1, strings.Count(stderr.String(), "\n"))
}

// Under Exec, a denied request is the run's error: exit 1, one line.
func TestExecSecureDenialOneLine(t *testing.T) {
	for _, subject := range []string{"svc.a", "forbidden"} {
		t.Run(subject, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			var stderr clitest.Buffer
			code := cli.Exec(fs, []string{"-secure"}, nil, func(ctx context.Context, env *cli.Env) error {
				if subject == "svc.a" {
					// The requester without its prefix: the inbox is denied.
					nc, err := env.ConnectAs(cli.Requester, "requester", nats.CustomInboxPrefix("_INBOX"))
					if err != nil {
						return err
					}
					_, err = denials.Request(ctx, nc, nats.NewMsg(subject))
					return err
				}
				nc, err := env.ConnectAs(cli.Requester, "requester")
				if err != nil {
					return err
				}
				_, err = denials.Request(ctx, nc, nats.NewMsg(subject))
				return err
			}, func(string) string { return "" }, &stderr, cli.Secure(clitest.SecureLock))
			assert.Equal(t, cli.ExitFailure, code)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			require.Len(t, lines, 2, stderr.String()) // the -secure line, the error
			assert.Contains(t, lines[0], "-secure: an embedded nats-server")
			assert.Regexp(t, `^prog: .*[Pp]ermissions [Vv]iolation for (Publish|Subscription) to "`, lines[1])
		})
	}
}

func TestExecSecureRefusals(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"with -context", []string{"-secure", "-context", "x"}, "-secure and -context exclude each other"},
		{"with -serve", []string{"-secure", "-serve"}, "-secure runs both halves"},
		{"with -request", []string{"-secure", "-request"}, "-secure runs both halves"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			var m cli.Mode
			m.AddFlags(fs)
			var stderr clitest.Buffer
			code := cli.Exec(fs, tc.args, nil, func(context.Context, *cli.Env) error { return errors.New("ran") }, func(string) string { return "" }, &stderr, cli.Secure(clitest.SecureLock))
			assert.Equal(t, cli.ExitUsage, code)
			assert.Contains(t, stderr.String(), tc.want)
		})
	}
	// A program not given Secure has no -secure.
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	var stderr clitest.Buffer
	code := cli.Exec(fs, []string{"-secure"}, nil, func(context.Context, *cli.Env) error { return nil }, func(string) string { return "" }, &stderr)
	assert.Equal(t, cli.ExitUsage, code)
}

// -secure wins over the environment, and says what it does not use.
func TestExecSecureIgnoresEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	var stderr clitest.Buffer
	getenv := func(k string) string {
		return map[string]string{"NATS_URL": "nats://127.0.0.1:1", "NATS_USER": "u", "NATS_PASSWORD": "Pw-s3cret"}[k]
	}
	code := cli.Exec(fs, []string{"-secure"}, nil, func(ctx context.Context, env *cli.Env) error {
		svc, err := env.ConnectAs(cli.Responder, "service")
		if err != nil {
			return err
		}
		if _, err := svc.Subscribe("svc.*", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
			return err
		}
		if err := svc.Flush(); err != nil {
			return err
		}
		nc, err := env.ConnectAs(cli.Requester, "requester")
		if err != nil {
			return err
		}
		_, err = denials.Request(ctx, nc, nats.NewMsg("svc.x"))
		return err
	}, getenv, &stderr, cli.Secure(clitest.SecureLock))
	assert.Equal(t, cli.ExitOK, code, stderr.String())
	assert.Contains(t, stderr.String(), "not used: NATS_URL, NATS_USER, NATS_PASSWORD")
	assert.NotContains(t, stderr.String(), "Pw-s3cret")
}

// allow_responses as Lockdown sets it: MaxReplies replies per request, and
// none after ReplyWindow. A window of 1 ns has always passed by the time
// the reply comes back over the network.
func TestLockdownReplyLimits(t *testing.T) {
	tests := []struct {
		name    string
		lock    cli.Lockdown
		allowed int // replies allowed before the denial
	}{
		{"one reply by default", cli.Lockdown{Service: []string{"svc.*"}}, 1},
		{"two replies", cli.Lockdown{Service: []string{"svc.*"}, MaxReplies: 2}, 2},
		{"window passed", cli.Lockdown{Service: []string{"svc.*"}, ReplyWindow: time.Nanosecond}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := cli.EmbeddedSecure("prog", tc.lock)
			require.NoError(t, err)
			var stderr clitest.Buffer
			env.Stderr = &stderr
			t.Cleanup(func() { require.NoError(t, env.Close()) })
			svc, err := env.ConnectAs(cli.Responder, "service")
			require.NoError(t, err)
			req, err := env.ConnectAs(cli.Requester, "requester")
			require.NoError(t, err)
			in, err := denials.SubscribeChecked(context.Background(), svc, "svc.*", "", func() (*nats.Subscription, error) {
				return svc.SubscribeSync("svc.*")
			})
			require.NoError(t, err)
			require.NoError(t, req.PublishRequest("svc.q", req.NewInbox(), nil))
			m, err := in.NextMsg(time.Minute)
			require.NoError(t, err)
			for range tc.allowed {
				require.NoError(t, denials.PublishChecked(context.Background(), svc, nats.NewMsg(m.Reply)))
			}
			err = denials.PublishChecked(context.Background(), svc, nats.NewMsg(m.Reply))
			clitest.RequireDenied(t, err, m.Reply)
		})
	}
}
