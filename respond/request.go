// The requester's side: a subject checked before it is sent, and what to
// say when a request got no reply in time.

package respond

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// MaxSubjectLen is the longest subject CheckSubject passes: 1,024 bytes.
// nats-server reads a publish's control line (subject, reply subject and
// sizes) up to 4,096 bytes by default and closes the connection on a longer
// one; 1,024 leaves room for any reply subject nats.go makes, also under a
// long nats.CustomInboxPrefix.
const MaxSubjectLen = 1024

// CheckSubject returns nil if subject can be the subject of a request: at
// most MaxSubjectLen bytes, dot-separated tokens, none empty, none a
// wildcard ("*" or ">": a request goes to one literal subject), no white
// space or control character (the protocol splits its lines on them).
// Otherwise the error wraps nats.ErrBadSubject and names the subject.
func CheckSubject(subject string) error {
	bad := func(why string) error {
		return fmt.Errorf("request %q: %s: %w", subject, why, nats.ErrBadSubject)
	}
	if len(subject) > MaxSubjectLen {
		return fmt.Errorf("request: subject of %d bytes is longer than %d: %w", len(subject), MaxSubjectLen, nats.ErrBadSubject)
	}
	for _, token := range strings.Split(subject, ".") {
		switch token {
		case "":
			return bad("empty token")
		case "*", ">":
			return bad("a wildcard is not a request subject")
		}
	}
	if strings.ContainsFunc(subject, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("white space or a control character")
	}
	return nil
}

// WhyNoReply says what, on nc's side, may explain a request that got no
// reply within its timeout, as a note to append to the error's message: "
// (connection reconnecting: the request waited in the reconnect buffer)"
// when nc is not connected, " (the server does not support headers: ...)"
// when its server has no header support, so sends neither error replies nor
// the no-responders status, or "" when nc sees nothing wrong (someone took
// the request and did not answer in time).
func WhyNoReply(nc *nats.Conn) string {
	if status := nc.Status(); status != nats.CONNECTED {
		return fmt.Sprintf(" (connection %s: the request waited in the reconnect buffer)", strings.ToLower(status.String()))
	}
	if !nc.HeadersSupported() {
		return " (the server does not support headers: it sends neither error replies nor the no-responders status, so a request that fails or that nobody serves times out)"
	}
	return ""
}
