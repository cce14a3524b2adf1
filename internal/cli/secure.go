// The locked-down mode (-secure): an embedded server with one user per part
// of a request-reply, each allowed only what that part needs.

package cli

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Part is what a connection does in a request-reply, which decides its
// user and permissions under -secure (see Lockdown).
type Part int

// The parts of a request-reply.
const (
	// Requester publishes requests to the service subjects and receives the
	// replies on its own inboxes.
	Requester Part = iota + 1
	// Responder subscribes to the service subjects and publishes replies.
	Responder
)

// String names the part as its user is named: "requester", "responder".
func (p Part) String() string {
	switch p {
	case Requester:
		return "requester"
	case Responder:
		return "responder"
	}
	return fmt.Sprintf("Part(%d)", int(p))
}

// Defaults of a Lockdown.
const (
	// DefaultMaxReplies is how many replies a responder may send to one
	// request unless Lockdown.MaxReplies says otherwise: 1.
	DefaultMaxReplies = 1
	// DefaultReplyWindow is how long after a request its responder may
	// reply unless Lockdown.ReplyWindow says otherwise: 1 min.
	DefaultReplyWindow = time.Minute
)

// Lockdown is the locked-down setup of one scenario, what -secure runs:
//
//   - the requester (user "requester") may publish only to the Service
//     subjects, and subscribe only to its own inbox prefix, InboxPrefix
//     ("_INBOX_requester"), that is InboxPrefix+".>": every inbox nats.go
//     makes with nats.CustomInboxPrefix lies under it, also the request mux
//     "<prefix>.<nuid>.*", which has one token more than an inbox, hence
//     ".>" and not ".*". The prefix is not under "_INBOX.", so a user
//     given "_INBOX.>" by mistake still cannot read these replies;
//   - the responder (user "responder") may subscribe only to the Service
//     subjects, in a queue group or not, and publish nothing but replies:
//     nats-server's allow_responses lets it publish to the reply subject of
//     a request it received, at most MaxReplies times and within
//     ReplyWindow of receiving it.
//
// Anything else is a permissions violation, which the server reports to
// the client asynchronously (-ERR 'Permissions Violation for ...'); see
// Request for how a requester learns of it within one round trip.
type Lockdown struct {
	// Service are the subjects the responders serve (wildcards allowed),
	// e.g. "greet.*".
	Service []string
	// MaxReplies is allow_responses' max: replies per request; 0 means
	// DefaultMaxReplies (1). A scatter-gather responder still sends one.
	MaxReplies int
	// ReplyWindow is allow_responses' expires; 0 means DefaultReplyWindow.
	ReplyWindow time.Duration
}

// InboxPrefix is the requester's inbox prefix under -secure and in
// security/locked-down.conf: "_INBOX_requester".
const InboxPrefix = "_INBOX_requester"

// Identity is one user of a locked-down server and the options that
// connect as it.
type Identity struct {
	User, Password string
	// InboxPrefix is the user's inbox prefix, "" for nats.go's default.
	InboxPrefix string
}

// Options returns the nats.go options that connect as id: its user and
// password, and its inbox prefix if it has one.
func (id Identity) Options() []nats.Option {
	opts := []nats.Option{nats.UserInfo(id.User, id.Password)}
	if id.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(id.InboxPrefix))
	}
	return opts
}

// Users returns the server users of the lockdown with fresh random
// passwords (a NUID each: 22 base-62 characters), for
// testserver.WithUsers, and the identity of each part.
func (l Lockdown) Users() ([]*server.User, map[Part]Identity) {
	maxReplies, window := l.MaxReplies, l.ReplyWindow
	if maxReplies <= 0 {
		maxReplies = DefaultMaxReplies
	}
	if window <= 0 {
		window = DefaultReplyWindow
	}
	ids := map[Part]Identity{
		Requester: {User: Requester.String(), Password: nuid.Next(), InboxPrefix: InboxPrefix},
		Responder: {User: Responder.String(), Password: nuid.Next()},
	}
	service := append([]string(nil), l.Service...)
	users := []*server.User{
		{
			Username: ids[Requester].User,
			Password: ids[Requester].Password,
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: service},
				Subscribe: &server.SubjectPermission{Allow: []string{InboxPrefix + ".>"}},
			},
		},
		{
			Username: ids[Responder].User,
			Password: ids[Responder].Password,
			Permissions: &server.Permissions{
				// No publish allowed but replies: allow_responses.
				Publish:   &server.SubjectPermission{Allow: []string{}},
				Subscribe: &server.SubjectPermission{Allow: service},
				Response:  &server.ResponsePermission{MaxMsgs: maxReplies, Expires: window},
			},
		},
	}
	return users, ids
}
