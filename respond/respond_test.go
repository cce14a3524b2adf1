// Tests of the helpers on a real embedded nats-server: error replies sent
// and read (also against a micro service's), the recovery middleware, the
// no-responders status, the subject check and the timeout note.

package respond_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
	"reqreply/respond"
)

// connect connects to url and closes the connection when t ends.
func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// serve subscribes nc to subject with h and flushes, so the server has the
// subscription; it is unsubscribed when t ends.
func serve(t *testing.T, nc *nats.Conn, subject string, h nats.MsgHandler) {
	t.Helper()
	sub, err := nc.Subscribe(subject, h)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// A handler's error is answered with the micro error headers: code 500 and
// the error's text, or a *ServiceError's own code and description (also
// wrapped), never empty; ErrorOf reads them back, and is nil for an answer.
func TestErrorReply(t *testing.T) {
	tests := []struct {
		name string
		err  error // nil: the responder answers
		want *respond.ServiceError
	}{
		{name: "answer"},
		{name: "plain error", err: errors.New("no greeting today"),
			want: &respond.ServiceError{Code: "500", Description: "no greeting today"}},
		{name: "service error", err: &respond.ServiceError{Code: "418", Description: "I'm a teapot"},
			want: &respond.ServiceError{Code: "418", Description: "I'm a teapot"}},
		{name: "wrapped service error", err: fmt.Errorf("greet: %w", &respond.ServiceError{Code: "404", Description: "nobody"}),
			want: &respond.ServiceError{Code: "404", Description: "nobody"}},
		{name: "empty service error", err: &respond.ServiceError{},
			want: &respond.ServiceError{Code: "500", Description: "code 500"}},
		{name: "code alone", err: &respond.ServiceError{Code: "503"},
			want: &respond.ServiceError{Code: "503", Description: "code 503"}},
		{name: "nil service error", err: (*respond.ServiceError)(nil),
			want: &respond.ServiceError{Code: "500", Description: "code 500"}},
	}
	nc := connect(t, natsURL())
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("reply.%d", i)
			sent := make(chan error, 1)
			serve(t, nc, subject, func(m *nats.Msg) {
				if tc.err == nil {
					sent <- m.Respond([]byte("hello"))
					return
				}
				sent <- respond.Error(m, tc.err)
			})
			msg, err := nc.Request(subject, nil, time.Minute)
			require.NoError(t, err)
			require.NoError(t, <-sent)
			err = respond.ErrorOf(msg)
			if tc.want == nil {
				assert.NoError(t, err)
				assert.Equal(t, "hello", string(msg.Data))
				return
			}
			var serr *respond.ServiceError
			require.ErrorAs(t, err, &serr)
			assert.Equal(t, tc.want, serr)
			assert.Empty(t, msg.Data, "an error reply has no payload")
			assert.Equal(t, "service error "+tc.want.Code+": "+tc.want.Description, err.Error())
		})
	}
}

// ErrorAs sends Error's reply, naming its responder in ResponderHeader (the
// header a gather reads); with an empty name it is Error.
func TestErrorAs(t *testing.T) {
	nc := connect(t, natsURL())
	for _, name := range []string{"worker-3", ""} {
		t.Run("name="+name, func(t *testing.T) {
			subject := "reply.as." + strconv.Itoa(len(name))
			sent := make(chan error, 1)
			serve(t, nc, subject, func(m *nats.Msg) { sent <- respond.ErrorAs(m, name, errors.New("out of stock")) })
			msg, err := nc.Request(subject, nil, time.Minute)
			require.NoError(t, err)
			require.NoError(t, <-sent)
			assert.Equal(t, &respond.ServiceError{Code: "500", Description: "out of stock"}, respond.ErrorOf(msg))
			assert.Equal(t, name, msg.Header.Get(respond.ResponderHeader))
		})
	}
}

// An error reply from nats.go's micro framework reads the same.
func TestErrorOfMicro(t *testing.T) {
	nc := connect(t, natsURL())
	svc, err := micro.AddService(nc, micro.Config{
		Name:    "teapot",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: "teapot.brew",
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Error("418", "I'm a teapot", nil) }),
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop() })
	msg, err := nc.Request("teapot.brew", nil, time.Minute)
	require.NoError(t, err)
	var serr *respond.ServiceError
	require.ErrorAs(t, respond.ErrorOf(msg), &serr)
	assert.Equal(t, &respond.ServiceError{Code: "418", Description: "I'm a teapot"}, serr)
}

// Error cannot send an error reply for a message that has no subscription
// or no reply subject, or on a server without header support.
func TestErrorFails(t *testing.T) {
	plain := testserver.New(t, testserver.WithoutHeaders())
	tests := []struct {
		name string
		url  string
		msg  func(nc *nats.Conn) *nats.Msg // a message Error is called on
		want error
	}{
		{name: "not bound", url: natsURL(), want: nats.ErrMsgNotBound,
			msg: func(*nats.Conn) *nats.Msg { return &nats.Msg{Subject: "x", Reply: "y"} }},
		{name: "no reply subject", url: natsURL(), want: nats.ErrMsgNoReply,
			msg: func(nc *nats.Conn) *nats.Msg { return received(t, nc, false) }},
		{name: "no header support", url: plain.ClientURL(), want: nats.ErrHeadersNotSupported,
			msg: func(nc *nats.Conn) *nats.Msg { return received(t, nc, true) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc := connect(t, tc.url)
			assert.ErrorIs(t, respond.Error(tc.msg(nc), errors.New("failed")), tc.want)
		})
	}
}

// received returns a message nc's own subscription received: a request
// (with a reply subject) or a plain publish.
func received(t *testing.T, nc *nats.Conn, request bool) *nats.Msg {
	t.Helper()
	sub, err := nc.SubscribeSync("in")
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	m := &nats.Msg{Subject: "in"}
	if request {
		m.Reply = nc.NewInbox()
	}
	require.NoError(t, nc.PublishMsg(m))
	got, err := sub.NextMsg(time.Minute)
	require.NoError(t, err)
	return got
}

// Recover turns a panic into an error reply with code 500, tells failed,
// and the subscription goes on serving: the next request is answered.
// When no error reply can be sent, failed is told why too.
func TestRecover(t *testing.T) {
	plain := testserver.New(t, testserver.WithoutHeaders())
	tests := []struct {
		name    string
		url     string
		panic   any
		request bool // false: a plain publish
		reply   string
		failed  string // what failed is told; "" if not called
	}{
		{name: "string", url: natsURL(), panic: "boom", request: true,
			reply: "service error 500: handler panicked: boom", failed: "handler panicked: boom"},
		{name: "error", url: natsURL(), panic: errors.New("broken"), request: true,
			reply: "service error 500: handler panicked: broken", failed: "handler panicked: broken"},
		{name: "no panic", url: natsURL(), request: true, reply: "ok"},
		{name: "plain publish", url: natsURL(), panic: "boom",
			failed: "handler panicked: boom; no error reply sent: nats: message does not have a reply"},
		{name: "no header support", url: plain.ClientURL(), panic: "boom", request: true,
			failed: "handler panicked: boom; no error reply sent: nats: headers not supported by this server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc := connect(t, tc.url)
			failed := make(chan error, 1)
			handled := make(chan struct{}, 2)
			serve(t, nc, "svc", respond.Recover(func(m *nats.Msg) {
				handled <- struct{}{}
				if tc.panic != nil && string(m.Data) == "first" {
					panic(tc.panic)
				}
				_ = m.Respond([]byte("ok"))
			}, func(_ *nats.Msg, err error) { failed <- err }))

			switch {
			case !tc.request:
				require.NoError(t, nc.Publish("svc", []byte("first")))
				<-handled
			case tc.reply == "":
				// No error reply can come: the request times out.
				_, err := nc.Request("svc", []byte("first"), 50*time.Millisecond)
				require.ErrorIs(t, err, nats.ErrTimeout)
				<-handled
			default:
				msg, err := nc.Request("svc", []byte("first"), time.Minute)
				require.NoError(t, err)
				<-handled
				if err = respond.ErrorOf(msg); err != nil {
					assert.Equal(t, tc.reply, err.Error())
				} else {
					assert.Equal(t, tc.reply, string(msg.Data))
				}
			}
			if tc.failed == "" {
				assert.Empty(t, failed)
			} else {
				err := <-failed
				assert.ErrorIs(t, err, respond.ErrPanic)
				assert.Equal(t, tc.failed, err.Error())
			}
			// It goes on serving.
			msg, err := nc.Request("svc", []byte("next"), time.Minute)
			require.NoError(t, err)
			assert.Equal(t, "ok", string(msg.Data))
		})
	}
}

// A nil failed is allowed: the panic is answered all the same.
func TestRecoverNilFailed(t *testing.T) {
	nc := connect(t, natsURL())
	serve(t, nc, "nilfailed", respond.Recover(func(*nats.Msg) { panic("boom") }, nil))
	msg, err := nc.Request("nilfailed", nil, time.Minute)
	require.NoError(t, err)
	assert.EqualError(t, respond.ErrorOf(msg), "service error 500: handler panicked: boom")
}

// IsNoResponders tells the server's 503 status, received on a reply
// subject of one's own, from an answer, an empty answer and an error reply.
func TestIsNoResponders(t *testing.T) {
	nc := connect(t, natsURL())
	serve(t, nc, "nr.answer", func(m *nats.Msg) { _ = m.Respond([]byte("hi")) })
	serve(t, nc, "nr.empty", func(m *nats.Msg) { _ = m.Respond(nil) })
	serve(t, nc, "nr.error", func(m *nats.Msg) { _ = respond.Error(m, errors.New("failed")) })
	serve(t, nc, "nr.status", func(m *nats.Msg) {
		reply := &nats.Msg{Header: nats.Header{"Status": []string{"503"}}, Data: []byte("not a status")}
		_ = m.RespondMsg(reply)
	})
	tests := []struct {
		subject string
		want    bool
	}{
		{subject: "nr.nobody", want: true},
		{subject: "nr.answer"},
		{subject: "nr.empty"},
		{subject: "nr.error"},
		{subject: "nr.status"},
	}
	for _, tc := range tests {
		t.Run(tc.subject, func(t *testing.T) {
			// A raw inbox of its own, as a gather or a shared inbox has:
			// nats.go's request, and NextMsg, would turn the status into
			// an error.
			inbox := nc.NewInbox()
			replies := make(chan *nats.Msg, 1)
			sub, err := nc.ChanSubscribe(inbox, replies)
			require.NoError(t, err)
			defer func() { _ = sub.Unsubscribe() }()
			require.NoError(t, nc.PublishRequest(tc.subject, inbox, nil))
			assert.Equal(t, tc.want, respond.IsNoResponders(<-replies))
		})
	}
}

func TestCheckSubject(t *testing.T) {
	tests := []struct {
		subject string
		ok      bool
	}{
		{subject: "greet.joe", ok: true},
		{subject: "zoë.joe", ok: true},
		{subject: strings.Repeat("a", respond.MaxSubjectLen), ok: true},
		{subject: strings.Repeat("a", respond.MaxSubjectLen+1)},
		{subject: ""},
		{subject: "a..b"},
		{subject: ".a"},
		{subject: "a."},
		{subject: "*"},
		{subject: "a.>"},
		{subject: "a b"},
		{subject: "a\tb"},
		{subject: "\x00"},
		{subject: "a.\x7f"},
	}
	for _, tc := range tests {
		name := tc.subject
		if len(name) > 20 {
			name = fmt.Sprintf("%d bytes", len(name))
		}
		t.Run(name, func(t *testing.T) {
			err := respond.CheckSubject(tc.subject)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, nats.ErrBadSubject)
			}
		})
	}
}

// WhyNoReply says nothing on a healthy connection, and why otherwise: a
// server without header support, a connection waiting to reconnect.
func TestWhyNoReply(t *testing.T) {
	plain := testserver.New(t, testserver.WithoutHeaders())
	gone := testserver.New(t)
	tests := []struct {
		name string
		nc   func(t *testing.T) *nats.Conn
		want string
	}{
		{name: "connected", want: "",
			nc: func(t *testing.T) *nats.Conn { return connect(t, natsURL()) }},
		{name: "no header support", want: " (the server does not support headers: it sends neither error replies nor the no-responders status, so a request that fails or that nobody serves times out)",
			nc: func(t *testing.T) *nats.Conn { return connect(t, plain.ClientURL()) }},
		{name: "reconnecting", want: " (connection reconnecting: the request waited in the reconnect buffer)",
			nc: func(t *testing.T) *nats.Conn {
				down := make(chan struct{})
				nc := connect(t, gone.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour),
					nats.DisconnectErrHandler(func(*nats.Conn, error) { close(down) }))
				testserver.Shutdown(gone)
				<-down
				return nc
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, respond.WhyNoReply(tc.nc(t)))
		})
	}
}
