package denials_test

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"reqreply/denials"
)

// TestParseViolation reads the kind, subject and queue out of the texts
// nats-server sends (it writes subject and queue with Go's %q, so a quote
// or a control character comes escaped), as nats.go hands them on.
func TestParseViolation(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		ok      bool
		kind    string
		subject string
		queue   string
	}{
		{name: "publish", text: fmt.Sprintf("Permissions Violation for Publish to %q", "greet.joe"), ok: true, kind: denials.DenyPublish, subject: "greet.joe"},
		{name: "subscription", text: fmt.Sprintf("Permissions Violation for Subscription to %q", "_INBOX.abc.*"), ok: true, kind: denials.DenySubscribe, subject: "_INBOX.abc.*"},
		{name: "queue", text: fmt.Sprintf("Permissions Violation for Subscription to %q using queue %q", "work", "q\"1"), ok: true, kind: denials.DenySubscribe, subject: "work", queue: "q\"1"},
		{name: "revoked by a reload", text: fmt.Sprintf("Permissions Violation for Subscription to %q (sid %q)", "_INBOX.x.*", "3"), ok: true, kind: denials.DenySubscribe, subject: "_INBOX.x.*"},
		{name: "a quote in the subject", text: fmt.Sprintf("Permissions Violation for Publish to %q", `a"b`), ok: true, kind: denials.DenyPublish, subject: `a"b`},
		{name: "a control character", text: fmt.Sprintf("Permissions Violation for Publish to %q", "a\x01b"), ok: true, kind: denials.DenyPublish, subject: "a\x01b"},
		{name: "a backslash", text: fmt.Sprintf("Permissions Violation for Publish to %q", `a\`), ok: true, kind: denials.DenyPublish, subject: `a\`},
		{name: "lower case, as some versions send it", text: `permissions violation for publish to "x"`, ok: true, kind: denials.DenyPublish, subject: "x"},
		{name: "refused for its reply subject", text: fmt.Sprintf("Permissions Violation for Publish with Reply of %q", "$JS.API.INFO"), ok: true, kind: denials.DenyReply, subject: "$JS.API.INFO"},
		{name: "another text", text: "Authorization Violation", ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, subject, queue, ok := denials.ParseViolation(fmt.Errorf("%w: %s", nats.ErrPermissionViolation, tc.text))
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.kind, kind)
			assert.Equal(t, tc.subject, subject)
			assert.Equal(t, tc.queue, queue)
		})
	}
}
