package main

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/hedge"
	"reqreply/internal/testserver"
)

// TestClosedClientIsReleased: once a Client's connection has closed
// (after Client.Close or not), nothing in the process keeps the Client:
// the denial watches of the denied subjects it kept are stopped at the
// close, and with them their callbacks leave cli's process-wide
// dispatcher. A process that makes clients on new connections (a client
// per tenant) does not grow with every one it made.
func TestClosedClientIsReleased(t *testing.T) {
	tests := []struct {
		name        string
		secure      bool // every subject is denied
		closeClient bool
	}{
		{name: "answered, client and connection closed", closeClient: true},
		{name: "denied, client and connection closed", secure: true, closeClient: true},
		{name: "denied, connection closed", secure: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, opts := manySubjects(t, tc.secure)
			nc, err := env.Connect("requester", opts...)
			require.NoError(t, err)
			c, err := newClient(nc, hedge.Policy{})
			require.NoError(t, err)
			for i := range 10 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Request(ctx, "tail.many."+strconv.Itoa(i), []byte("1"))
				cancel()
				if tc.secure {
					require.ErrorIs(t, err, nats.ErrPermissionViolation)
				} else {
					require.NoError(t, err)
				}
			}
			if tc.closeClient {
				require.NoError(t, c.Close())
			}
			nc.Close()
			w := weak.Make(c)
			c = nil
			// Polled: the close listener's goroutine ends on its own time.
			released := false
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for range 100 {
				runtime.GC()
				if w.Value() == nil {
					released = true
					break
				}
				<-tick.C
			}
			require.True(t, released, "the closed client (and its denial watches) is still held after its connection closed")
		})
	}
}

// TestClientConnectionEndings: a request through a Client whose
// connection drains, or closes while disconnected (the copy waiting in the
// reconnect buffer), ends within one round trip with
// nats.ErrConnectionClosed, and a drain is not held.
func TestClientConnectionEndings(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, s *server.Server, nc *nats.Conn)
		held bool // the responder holds the request first
	}{
		{name: "drained during the wait", held: true, end: func(t *testing.T, _ *server.Server, nc *nats.Conn) { assert.NoError(t, nc.Drain()) }},
		{name: "closed while disconnected", end: func(t *testing.T, s *server.Server, nc *nats.Conn) {
			// wait for the request to be in the reconnect buffer
			for n, _ := nc.Buffered(); n <= 0; n, _ = nc.Buffered() {
				<-time.After(time.Millisecond)
			}
			nc.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.New(t)
			svc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer svc.Close()
			held := make(chan struct{}, 1)
			_, err = svc.Subscribe("hold", func(*nats.Msg) { held <- struct{}{} })
			require.NoError(t, err)
			require.NoError(t, svc.Flush())
			nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
			require.NoError(t, err)
			defer nc.Close()
			c, err := newClient(nc, hedge.Policy{})
			require.NoError(t, err)
			defer c.Close()
			if !tc.held {
				s.Shutdown()
				for nc.Status() == nats.CONNECTED {
					<-time.After(time.Millisecond)
				}
			}
			go func() {
				if tc.held {
					<-held
				}
				tc.end(t, s, nc)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err = c.Request(ctx, "hold", []byte("x"))
			assert.Less(t, time.Since(start), 2*time.Second)
			require.ErrorIs(t, err, nats.ErrConnectionClosed)
			assert.NotErrorIs(t, nc.LastError(), nats.ErrDrainTimeout)
		})
	}
}

// startReloadable starts a server with the users svc (anything) and req,
// whose permissions perms gives; reload swaps req's permissions on the
// running server (a config reload).
func startReloadable(t *testing.T, perms *server.Permissions) (url func(user string) string, reload func(*server.Permissions)) {
	t.Helper()
	users := func(p *server.Permissions) testserver.Option {
		return testserver.WithUsers(&server.User{Username: "svc", Password: "svc"}, &server.User{Username: "req", Password: "req", Permissions: p})
	}
	s, reloadOpts := testserver.NewReloadable(t, users(perms))
	url = func(user string) string {
		return strings.Replace(s.ClientURL(), "nats://", "nats://"+user+":"+user+"@", 1)
	}
	return url, func(p *server.Permissions) { reloadOpts(users(p)) }
}

// TestOwnHandlerSetDuringLoad: a caller sets its own error handler (for
// logging) while a Client's requests to a subject are under way, and
// requests to it keep overlapping (a load), so the subject's denial watch
// never ends. A later request, made after the handler was set, whose
// publish the server denies (permissions reloaded), still ends with its
// denial within a round trip, not at its deadline: the Client chains the
// dispatcher again (denials.Rehook) on each request.
func TestOwnHandlerSetDuringLoad(t *testing.T) {
	allow := &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"svc.>"}}, Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}}}
	deny := &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"other.>"}}, Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}}}
	tests := []struct {
		name    string
		overlap bool // a call to the subject is under way when the handler is set, and when the later call is made
	}{
		{name: "no call under way"},
		{name: "a call under way", overlap: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, reload := startReloadable(t, allow)
			svc, err := nats.Connect(url("svc"))
			require.NoError(t, err)
			defer svc.Close()
			held := make(chan struct{}, 4)
			_, err = svc.Subscribe("svc.a", func(*nats.Msg) { held <- struct{}{} }) // never answers
			require.NoError(t, err)
			require.NoError(t, svc.Flush())

			nc, err := nats.Connect(url("req"))
			require.NoError(t, err)
			defer nc.Close()
			c, err := newClient(nc, hedge.Policy{})
			require.NoError(t, err)
			defer c.Close()

			first := make(chan error, 1)
			if tc.overlap {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					_, err := c.Request(ctx, "svc.a", []byte("1"))
					first <- err
				}()
				<-held
			}
			var seen sync.WaitGroup
			seen.Add(1)
			var once sync.Once
			nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrPermissionViolation) {
					once.Do(seen.Done)
				}
			})
			reload(deny)

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			_, err = c.Request(ctx, "svc.a", []byte("2"))
			took := time.Since(start)
			seen.Wait() // the caller's handler saw the violation either way
			assert.ErrorIs(t, err, nats.ErrPermissionViolation, "after %v", took)
			assert.Less(t, took, 2*time.Second, "a denial must end the call, not its 5 s deadline")
			if tc.overlap {
				require.NoError(t, c.Close())
				<-first
			}
		})
	}
}
