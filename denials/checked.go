// Checked publishes and subscriptions, and watches: how a responder or a
// pattern with its own subscriptions learns of a denial at once.

package denials

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
)

// PublishChecked publishes msg on nc and waits for the server to have read
// it (a flush, bounded by ctx): it returns an error wrapping
// nats.ErrPermissionViolation and ErrDenied, naming the subject, when the
// server denied the publish, or naming msg.Reply when it refused the
// publish for that reply subject (a reserved one, such as $JS.API.>), and
// nil when it took it. A responder that must
// know its reply was allowed (allow_responses limits how many and how late)
// pays one round trip for that. Without a deadline in ctx, the flush waits
// at most the connection's timeout (nats.Timeout; 2 s by default). Other errors are nats.go's (a closed connection,
// ctx's error or nats.ErrTimeout for a flush that did not come back).
func PublishChecked(ctx context.Context, nc *nats.Conn, msg *nats.Msg) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, nc.Opts.Timeout)
		defer cancel()
	}
	hook(nc)
	var mu sync.Mutex
	var denied error
	stop := watchDenials(nc, func(err error) {
		mu.Lock()
		denied = err
		mu.Unlock()
	}, publishKeys(msg)...)
	defer stop()
	before := nc.LastError()
	if err := nc.PublishMsg(msg); err != nil {
		return err
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("publish %q: flush: %w", msg.Subject, err)
	}
	// The -ERR came before the PONG, but nats.go hands it to the error
	// handler on another goroutine: the violation is also in the
	// connection's last error, set before the PONG was read.
	mu.Lock()
	err := denied
	mu.Unlock()
	if err == nil {
		if kind, subject, _, last := violationSince(nc, before); last != nil && slices.Contains(publishKeys(msg), denialKey{kind: kind, subject: subject}) {
			err = last
			claimedElsewhere(nc, last)
		}
	}
	if err != nil {
		return deniedError{err: err}
	}
	return nil
}

// publishKeys returns the denials a publish of msg can meet, without a
// connection: its subject, and its reply subject if it has one.
func publishKeys(msg *nats.Msg) []denialKey {
	keys := []denialKey{{kind: denyPublish, subject: msg.Subject}}
	if msg.Reply != "" {
		keys = append(keys, denialKey{kind: denyReply, subject: msg.Reply})
	}
	return keys
}

// violationSince returns the kind, subject and queue group of nc's last
// error, and that error, if it is a permissions violation nats.go recorded
// after before (the last error read before the call's publish or
// subscribe); else a nil error.
// The last error is sticky: a violation from an earlier call, since
// allowed by a reload of the server's permissions, must not be taken as
// this call's. nats.go makes a new error value for each -ERR, so a new
// violation of the same subject is told apart from the old one.
func violationSince(nc *nats.Conn, before error) (kind, subject, queue string, last error) {
	last = nc.LastError()
	if last == nil || (before != nil && reflect.TypeOf(last).Comparable() && reflect.TypeOf(before).Comparable() && last == before) {
		return "", "", "", nil
	}
	kind, subject, queue, ok := parseViolation(last)
	if !ok {
		return "", "", "", nil
	}
	return kind, subject, queue, last
}

// SubscribeChecked makes a subscription with subscribe (any of nats.go's
// subscribe calls, for subject in queue group queue, "" for none), waits
// until the server has read it (a flush), and returns it if the server took
// it. If the server's permissions denied it, it unsubscribes and returns an
// error wrapping nats.ErrPermissionViolation and ErrDenied, naming the
// subject (and queue group), and, for one of nc's reply inboxes, saying
// how to set the inbox prefix. A responder subscribes this way, so that a
// service its user may not serve fails at its start instead of serving
// nothing; a gather with one long-lived inbox subscription (a mux) too.
//
// It watches for the violation before subscribing: the -ERR can come back
// before a check made afterwards would be registered, and an error
// handler that logs what Claimed does not claim would print it, a second
// report. Without a deadline in ctx, the flush
// waits at most the connection's timeout (nats.Timeout) and fails with
// nats.ErrTimeout; with one, with ctx's error. Errors of subscribe are
// returned as they are.
func SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	hook(nc)
	var mu sync.Mutex
	var got error
	key := denialKey{nc: nc, kind: denySubscribe, subject: subject, queue: queue}
	stop := watchDenials(nc, func(err error) {
		mu.Lock()
		got = err
		mu.Unlock()
	}, key)
	defer stop()
	before := nc.LastError()
	sub, err := subscribe()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); ok {
		err = nc.FlushWithContext(ctx)
	} else {
		err = nc.FlushTimeout(nc.Opts.Timeout)
	}
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %q: flush: %w", subject, err)
	}
	mu.Lock()
	err = got
	mu.Unlock()
	if err == nil {
		// Read before the PONG, maybe not yet handed to the handler.
		if kind, subj, q, last := violationSince(nc, before); last != nil && kind == denySubscribe && subj == subject && q == queue {
			err = last
			claimedElsewhere(nc, last)
		}
	}
	if err != nil {
		_ = sub.Unsubscribe()
		var hint string
		if underInbox(nc, subject) {
			hint = InboxHint
		}
		return nil, deniedError{err: err, hint: hint}
	}
	return sub, nil
}

// Watch calls onDenied, once, with the first permissions violation
// the server reports on nc for a publish to one of publish or a
// subscription to one of subscribe (exact subjects, as given to Publish and
// Subscribe; a queue subscription's violation names its group, so make
// that one with SubscribeChecked), wrapped so that errors.Is finds nats.ErrPermissionViolation
// and ErrDenied, until stop is called. It is how a pattern with its own
// inbox subscription and publishes (a scatter-gather, a queue-group load)
// ends within one round trip of a denial: register before subscribing and
// publishing, and end the wait when onDenied is called; see Request for the
// reasoning. A violation a watch receives is Claimed, so an error handler
// that logs only what is not claimed (internal/cli's Env) leaves it to
// the pattern's error, reported once. If
// both a subscription and a publish of one watch can be denied, check the
// subscription first (SubscribeChecked): the second violation could come
// after stop and be printed. Register before subscribing or publishing:
// the violation can come back at once.
func Watch(nc *nats.Conn, onDenied func(error), publish, subscribe []string) (stop func()) {
	hook(nc)
	var keys []denialKey
	for _, s := range publish {
		keys = append(keys, denialKey{kind: denyPublish, subject: s})
	}
	for _, s := range subscribe {
		keys = append(keys, denialKey{kind: denySubscribe, subject: s})
	}
	return watchDenials(nc, func(err error) { onDenied(deniedError{err: err}) }, keys...)
}
