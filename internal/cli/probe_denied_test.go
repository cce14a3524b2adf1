package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A probe that the server's permissions deny, its inbox subscription or its
// publish, ends the wait at once with the denial, naming the subject, and
// nothing is printed besides: the caller's error says it once. A denied
// inbox says what to fix, as a request's does (the usual cause: a
// requester connected without its user's inbox prefix).
func TestProbeDenied(t *testing.T) {
	tests := []struct {
		name    string
		part    Part
		subject string
		denied  string // a part of the error's text
		prefix  string // the connection's inbox prefix, when not the part's own
		hint    bool   // the error ends with inboxHint
	}{
		{name: "publish", part: Requester, subject: "other.joe", denied: `Publish to "other.joe"`},
		{name: "inbox", part: Responder, subject: "greet.joe", denied: `Subscription to "_INBOX.`, hint: true},
		{name: "inbox without the requester's prefix", part: Requester, prefix: "_INBOX", subject: "greet.joe", denied: `Subscription to "_INBOX.`, hint: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := EmbeddedSecure("probe", Lockdown{Service: []string{"greet.*"}})
			require.NoError(t, err)
			var stderr syncBuffer
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
					_, err := AwaitResponders(context.Background(), nc, tc.subject, AnyResponder(), time.Minute)
					return err
				},
				func() error {
					_, err := AwaitNoResponders(context.Background(), nc, tc.subject, time.Minute)
					return err
				},
			} {
				err := wait()
				require.ErrorIs(t, err, nats.ErrPermissionViolation)
				assert.ErrorIs(t, err, ErrDenied)
				assert.NotErrorIs(t, err, nats.ErrTimeout)
				assert.Contains(t, err.Error(), tc.denied)
				if tc.hint {
					assert.True(t, strings.HasSuffix(err.Error(), inboxHint), err.Error())
				} else {
					assert.NotContains(t, err.Error(), inboxHint)
				}
			}
			require.NoError(t, nc.Flush())
			assert.Empty(t, stderr.String(), "the denial is the wait's error, not also a printed line")
		})
	}
}
