// The responder's side: the middleware that runs a handler once per key,
// over a Store that holds the claims and the stored replies.

package idempotent

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Func is a handler whose reply can be stored: it returns the reply (its
// Data and Header; Subject and Reply are ignored) instead of sending it. nil
// is an empty reply. An error reply is a reply like any other (reqreply/
// respond's ErrorMsg makes one): it is stored and replayed, since the
// handler has run.
type Func func(req *nats.Msg) *nats.Msg

// Store holds the claims and the stored replies of a Middleware: Memory in
// the process, KV in a JetStream key-value bucket.
type Store interface {
	// Begin claims key, or returns the reply stored under it. When the
	// caller has the claim, done is not nil: the caller runs the handler
	// and calls done once with its reply, which stores it (its error wraps
	// ErrStore when the store could not). Otherwise reply is the stored
	// reply, waited for while another copy runs the handler, until ctx
	// ends: then the error wraps ErrInProgress. An error wrapping ErrStore
	// means the store could not be reached or read: nobody may run.
	Begin(ctx context.Context, key string) (done func(reply *nats.Msg) error, reply *nats.Msg, err error)
}

// ErrStore is wrapped by the error of a Store that cannot be reached or
// read (a bucket with no JetStream behind it, a timeout, a closed
// connection). The Middleware answers with an error reply with code 503 and
// does not run the handler: it fails closed.
var ErrStore = errors.New("idempotency store unavailable")

// ErrInProgress is wrapped by the error of a Store.Begin that waited for
// another copy's reply until its context ended: the first copy still runs,
// or its responder died holding the claim. The Middleware answers with an
// error reply with code 409, as the IETF draft answers a request whose key
// is in use, and does not run the handler: whether the first run took
// effect is unknown until its reply is stored.
var ErrInProgress = errors.New("request with this key in progress")

// DefaultWait is how long a copy waits for the reply of another copy that
// runs the handler, when Options.Wait is 0: 5 s.
const DefaultWait = 5 * time.Second

// Options tune a Middleware; the zero value is usable.
type Options struct {
	// Wait bounds how long a copy waits for another copy's reply, and the
	// store's claim: DefaultWait when 0.
	Wait time.Duration
	// Failed, if not nil, is told of each request answered with an error
	// reply of the middleware's (a bad key, ErrStore, ErrInProgress) or
	// whose reply could not be stored or sent, on the handler's goroutine.
	Failed func(m *nats.Msg, err error)
}

// Middleware runs a Func once per idempotency key: the first copy of a
// request to reach it (through its Store) runs the handler and stores the
// reply; every other copy is answered with that reply. Safe for concurrent
// use: serve it from several subscriptions, or several members of a queue
// group sharing a KV store. Make one with New.
type Middleware struct {
	store Store
	h     Func
	opts  Options

	runs, replays, refused atomic.Int64
}

// New returns the middleware that runs h once per key, with the claims and
// replies in s.
func New(s Store, h Func, o Options) *Middleware {
	if o.Wait <= 0 {
		o.Wait = DefaultWait
	}
	return &Middleware{store: s, h: h, opts: o}
}

// Stats are a Middleware's counters.
type Stats struct {
	// Runs of the handler: once per key, and once per request without a
	// key.
	Runs int64
	// Replays: copies answered with the reply of another copy's run.
	Replays int64
	// Refused: copies answered with the middleware's own error reply (a
	// bad key, the store unavailable, a wait given up), the handler not run.
	Refused int64
}

// Stats returns the counters now.
func (mw *Middleware) Stats() Stats {
	return Stats{Runs: mw.runs.Load(), Replays: mw.replays.Load(), Refused: mw.refused.Load()}
}

// ServeMsg is the nats.MsgHandler: subscribe it (nc.Subscribe,
// nc.QueueSubscribe). A request without a key runs the handler as it is,
// unprotected; one with a key that fails CheckKey (an empty one too) gets
// an error reply with code 400. Replies go through m.RespondMsg; error replies carry nats.go
// micro's headers (micro.ErrorHeader, micro.ErrorCodeHeader), so
// reqreply/respond's ErrorOf, and micro clients, read them.
//
// A panic in the handler is stored as an error reply with code 500, so the
// other copies do not run it again, and then re-panics (wrap ServeMsg in
// reqreply/respond's Recover to answer this copy too).
func (mw *Middleware) ServeMsg(m *nats.Msg) {
	key, ok := keyOf(m)
	if !ok {
		mw.runs.Add(1)
		mw.send(m, mw.run(m), nil)
		return
	}
	if err := CheckKey(key); err != nil {
		mw.refuse(m, "400", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), mw.opts.Wait)
	defer cancel()
	done, reply, err := mw.store.Begin(ctx, key)
	switch {
	case errors.Is(err, ErrInProgress):
		mw.refuse(m, "409", err)
		return
	case err != nil:
		mw.refuse(m, "503", err)
		return
	case done == nil:
		mw.replays.Add(1)
		r := clone(reply)
		r.Header.Set(ReplayedHeader, "true")
		mw.send(m, r, nil)
		return
	}
	mw.runs.Add(1)
	finished := false
	defer func() {
		if !finished { // the handler panicked: store that, and panic on
			_ = done(errorReply("500", "handler panicked; its effect is unknown"))
		}
	}()
	reply = mw.run(m)
	finished = true
	mw.send(m, reply, done(reply))
}

// run calls the handler and returns its reply, never nil.
func (mw *Middleware) run(m *nats.Msg) *nats.Msg {
	if r := mw.h(m); r != nil {
		return r
	}
	return &nats.Msg{}
}

// send answers m with a copy of reply; stored is done's error, told to
// Failed with the send's.
func (mw *Middleware) send(m *nats.Msg, reply *nats.Msg, stored error) {
	err := m.RespondMsg(clone(reply))
	if err = errors.Join(stored, err); err != nil && mw.opts.Failed != nil {
		mw.opts.Failed(m, fmt.Errorf("request %q key %q: %w", m.Subject, KeyOf(m), err))
	}
}

// refuse answers m with the middleware's error reply for err, with code.
func (mw *Middleware) refuse(m *nats.Msg, code string, err error) {
	mw.refused.Add(1)
	err = fmt.Errorf("request %q key %q: %w", m.Subject, KeyOf(m), err)
	if rerr := m.RespondMsg(errorReply(code, err.Error())); rerr != nil {
		err = fmt.Errorf("%w; no error reply sent: %w", err, rerr)
	}
	if mw.opts.Failed != nil {
		mw.opts.Failed(m, err)
	}
}

// errorReply is an error reply in nats.go micro's headers, as
// reqreply/respond's ErrorMsg makes (not imported, so that this directory
// can be copied alone).
func errorReply(code, description string) *nats.Msg {
	r := &nats.Msg{Header: nats.Header{}}
	r.Header.Set(micro.ErrorHeader, description)
	r.Header.Set(micro.ErrorCodeHeader, code)
	return r
}

// clone returns a reply of its own with msg's Data and Header, for one copy
// to send (RespondMsg sets its Subject), never nil.
func clone(msg *nats.Msg) *nats.Msg {
	r := &nats.Msg{Header: nats.Header{}, Data: msg.Data}
	for k, v := range msg.Header {
		r.Header[k] = append([]string(nil), v...)
	}
	return r
}
