package probe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// A probe that the server's permissions deny, its inbox subscription or its
// publish, ends the wait at once with the denial, naming the subject, and
// nothing is printed besides: the caller's error says it once. A denied
// inbox says what to fix, as a request's does (the usual cause: a
// requester connected without its user's inbox prefix).
func TestProbeDenied(t *testing.T) {
	tests := []struct {
		name    string
		part    cli.Part
		subject string
		denied  string // a part of the error's text
		prefix  string // the connection's inbox prefix, when not the part's own
		hint    bool   // the error ends with inboxHint
	}{
		{name: "publish", part: cli.Requester, subject: "other.joe", denied: `Publish to "other.joe"`},
		{name: "inbox", part: cli.Responder, subject: "greet.joe", denied: `Subscription to "_INBOX.`, hint: true},
		{name: "inbox without the requester's prefix", part: cli.Requester, prefix: "_INBOX", subject: "greet.joe", denied: `Subscription to "_INBOX.`, hint: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := cli.EmbeddedSecure("probe", cli.Lockdown{Service: []string{"greet.*"}})
			require.NoError(t, err)
			var stderr clitest.Buffer
			env.Stderr = &stderr
			t.Cleanup(func() { require.NoError(t, env.Close()) })
			var opts []nats.Option
			if tc.prefix != "" {
				opts = append(opts, nats.CustomInboxPrefix(tc.prefix))
			}
			nc, err := env.ConnectAs(tc.part, "prober", opts...)
			require.NoError(t, err)
			for _, wait := range []func() error{
				func() error {
					_, err := probe.Await(context.Background(), nc, tc.subject, probe.AnyResponder(), time.Minute)
					return err
				},
				func() error {
					_, err := probe.AwaitNone(context.Background(), nc, tc.subject, time.Minute)
					return err
				},
			} {
				err := wait()
				require.ErrorIs(t, err, nats.ErrPermissionViolation)
				assert.ErrorIs(t, err, denials.ErrDenied)
				assert.NotErrorIs(t, err, nats.ErrTimeout)
				assert.Contains(t, err.Error(), tc.denied)
				if tc.hint {
					assert.True(t, strings.HasSuffix(err.Error(), denials.InboxHint), err.Error())
				} else {
					assert.NotContains(t, err.Error(), denials.InboxHint)
				}
			}
			require.NoError(t, nc.Flush())
			assert.Empty(t, stderr.String(), "the denial is the wait's error, not also a printed line")
		})
	}
}

// A responder whose replies the server's permissions deny (a user with no
// allow_responses and no publish to the inboxes) answers every readiness
// probe in vain: the prober heard nothing, and each denied answer was
// printed, one line per probe, until the wait timed out. When the
// responder's connection is the prober's process's (a program running
// both halves), the first denied answer ends the wait at once with that
// denial, naming the reply subject, and nothing is printed, also for
// answers still on their way.
func TestProbeAnswerDenied(t *testing.T) {
	users := []*server.User{
		{Username: "prober", Password: "p", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"svc"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}},
		{Username: "mute", Password: "m", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"nothing"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"svc"}},
		}},
	}
	srv := testserver.New(t, testserver.WithUsers(users...))
	for _, tc := range []struct {
		name  string
		queue string
	}{
		{name: "plain subscriber"},
		{name: "queue group member", queue: "workers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := cli.NewEnv("probe", srv.ClientURL())
			var stderr clitest.Buffer
			env.Stderr = &stderr
			t.Cleanup(func() { require.NoError(t, env.Close()) })
			responder, err := env.Connect("responder", nats.UserInfo("mute", "m"))
			require.NoError(t, err)
			_, err = denials.SubscribeChecked(context.Background(), responder, "svc", tc.queue, func() (*nats.Subscription, error) {
				return responder.QueueSubscribe("svc", tc.queue, func(m *nats.Msg) { probe.Answer(m, "mute") })
			})
			require.NoError(t, err)
			prober, err := env.Connect("prober", nats.UserInfo("prober", "p"))
			require.NoError(t, err)

			_, err = probe.Await(context.Background(), prober, "svc", probe.AnyResponder(), 10*time.Second)
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.ErrorIs(t, err, denials.ErrDenied)
			assert.NotErrorIs(t, err, nats.ErrTimeout)
			assert.Contains(t, err.Error(), `Publish to "_INBOX.`)

			// Every answer sent so far has reached the server and been
			// denied once the responder's flush returns.
			require.NoError(t, responder.Flush())
			require.NoError(t, prober.Flush())
			require.NoError(t, responder.Flush())
			assert.Empty(t, stderr.String(), "the denial is the wait's error, not also printed lines")
		})
	}
}
