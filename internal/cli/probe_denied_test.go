package cli

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A probe that the server's permissions deny, its inbox subscription or its
// publish, ends the wait at once with the denial, naming the subject, and
// nothing is printed besides: the caller's error says it once.
func TestProbeDenied(t *testing.T) {
	tests := []struct {
		name    string
		part    Part
		subject string
		denied  string // a part of the error's text
	}{
		{name: "publish", part: Requester, subject: "other.joe", denied: `Publish to "other.joe"`},
		{name: "inbox", part: Responder, subject: "greet.joe", denied: `Subscription to "_INBOX.`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := EmbeddedSecure("probe", Lockdown{Service: []string{"greet.*"}})
			require.NoError(t, err)
			var stderr syncBuffer
			env.Stderr = &stderr
			t.Cleanup(func() { require.NoError(t, env.Close()) })
			nc, err := env.ConnectAs(tc.part, "prober")
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
			}
			require.NoError(t, nc.Flush())
			assert.Empty(t, stderr.String(), "the denial is the wait's error, not also a printed line")
		})
	}
}
