// The denial error: what every call of this package returns when the
// server's permissions deny it.

package denials

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
)

// ErrDenied is wrapped, together with nats.ErrPermissionViolation, by the
// errors of Request and PublishChecked for a denied publish or
// subscription.
var ErrDenied = errors.New("denied by the server's permissions")

// deniedError is a denial: its text is the server's violation (which names
// the subject), with a hint for a denied reply inbox; errors.Is finds
// ErrDenied and nats.ErrPermissionViolation.
type deniedError struct {
	err  error
	hint string
}

func (e deniedError) Error() string   { return e.err.Error() + e.hint }
func (e deniedError) Unwrap() []error { return []error{ErrDenied, e.err} }

// denied wraps the violation err of a request whose inbox is inbox.
func denied(err error, inbox string) error {
	var hint string
	if kind, subject, _, ok := parseViolation(err); ok && kind == denySubscribe && subject == inbox {
		hint = InboxHint
	}
	return deniedError{err: err, hint: hint}
}

// InboxHint ends the error of a denied reply inbox (Request, Context,
// SubscribeChecked of one of the connection's inboxes): the usual cause is a
// requester connected without the inbox prefix its user is given.
const InboxHint = " (a reply inbox: connect with an inbox prefix this user may subscribe to: NATS_INBOX_PREFIX, or a nats context's inbox_prefix)"

// underInbox reports whether subject is one of nc's inboxes: under its
// inbox prefix (nats.CustomInboxPrefix), or nats.go's "_INBOX".
func underInbox(nc *nats.Conn, subject string) bool {
	prefix := nc.Opts.InboxPrefix
	if prefix == "" {
		prefix = "_INBOX"
	}
	return strings.HasPrefix(subject, prefix+".")
}
