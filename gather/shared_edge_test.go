package gather_test

// Edge cases of the shared variant (shared.go) found by trying to break it:
// denials after the Mux is made, escaped subjects in a violation, and its
// pooled per-gather state under reuse, close and drain.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/gather"
	"reqreply/multireply/variants"
)

// startReloadable starts a server with the users svc (anything) and req,
// whose permissions perms gives; reload swaps req's permissions on the
// running server (a config reload, as nats-server --signal reload does).
func startReloadable(t *testing.T, perms *server.Permissions) (url func(user string) string, reload func(*server.Permissions)) {
	t.Helper()
	users := func(p *server.Permissions) []*server.User {
		return []*server.User{{Username: "svc", Password: "svc"}, {Username: "req", Password: "req", Permissions: p}}
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Users: users(perms)}
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(s.Shutdown)
	port := s.Addr().(*net.TCPAddr).Port
	url = func(user string) string { return "nats://" + user + ":" + user + "@127.0.0.1:" + strconv.Itoa(port) }
	reload = func(p *server.Permissions) {
		o := opts.Clone()
		o.Port = port
		o.Users = users(p)
		require.NoError(t, s.ReloadOptions(o))
	}
	return url, reload
}

// Denials after the Mux is made: a config reload that takes the inbox
// prefix away from the requester's user makes the server remove the Mux's
// "<inbox>.*" subscription and send "Permissions Violation for
// Subscription to ..." on the Mux's connection. Mux.denied looks only at
// publish violations, so the Mux goes on as if subscribed: every later
// gather is sent, answered by the responders, and ends at its deadline
// with no reply and no error ("0 replies, stopped: deadline"), the silence
// this test guards against. It should end (within a round trip, or at
// once for a gather started later) with an error wrapping
// nats.ErrPermissionViolation that names the inbox, as NewMux's does.
// The inbox and natsext variants subscribe (checked) per gather, so they
// fail promptly here already.
func TestMuxInboxRevokedByReload(t *testing.T) {
	url, reload := startReloadable(t, nil)
	rnc, err := nats.Connect(url("svc"))
	require.NoError(t, err)
	t.Cleanup(rnc.Close)
	_, err = rnc.Subscribe("svc", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	require.NoError(t, err)
	require.NoError(t, rnc.Flush())

	var log errorLog
	nc, err := nats.Connect(url("req"), nats.ErrorHandler(log.handler))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	res, err := gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(1))
	require.NoError(t, err)
	require.Equal(t, 1, res.Count)

	reload(&server.Permissions{Subscribe: &server.SubjectPermission{Deny: []string{"_INBOX.>"}}})
	// Whether the violation reaches the Mux before this gather is sent or
	// after, the gather ends with it within a round trip, not at its
	// deadline (a minute); so does every later one, at once.
	for range 2 {
		res, err = gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(1))
		require.ErrorIs(t, err, nats.ErrPermissionViolation, "%+v", res)
		assert.ErrorIs(t, err, denials.ErrDenied)
		assert.Contains(t, err.Error(), `Subscription to "_INBOX.`)
		assert.Equal(t, gather.StopFailed, res.Reason)
	}
	assert.Empty(t, log.all(), "the Mux's denial is the gathers' error, not nc's handler's")
}

// A subject with a double quote is a valid NATS subject (CheckSubject
// takes it; nats-server routes it), but nats-server writes it %q-quoted in
// its violation ("Publish to \"a\\\"b\""), and both Mux.denied
// (shared.go: the text up to the next quote) and cli's violationRe
// (`"([^"]+)"`, used by the inbox and natsext variants through
// denials.Watch) read the subject as `a\`: the denial matches no
// gather, and the gather ends silently at its deadline instead of within
// a round trip; the violation is printed as unclaimed instead. The same
// holds for a subject with a byte %q escapes (a control character,
// invalid UTF-8). Reading the quoted subject with strconv.Unquote fixes
// both places.
func TestDeniedSubjectWithQuote(t *testing.T) {
	url, _ := startReloadable(t, &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"ok"}}})
	for _, subject := range []string{`a"b`, "a\x01b"} {
		for _, variant := range variants.Names {
			t.Run(variant+"/"+subject, func(t *testing.T) {
				nc, err := nats.Connect(url("req"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
				require.NoError(t, err)
				t.Cleanup(nc.Close)
				v, release, err := variants.New(variant, nc)
				require.NoError(t, err)
				t.Cleanup(func() { _ = release() })
				res, err := gather.Gather(context.Background(), v, subject, nil, gather.Timeout(5*time.Second))
				assert.ErrorIs(t, err, nats.ErrPermissionViolation, "%+v", res)
				assert.Equal(t, gather.StopFailed, res.Reason)
			})
		}
	}
}

// The pooled per-gather state, attacked: many goroutines on one Mux, each
// starting its next gather at once after the last ended by MaxReplies, a
// break, a cancel or its deadline, while the responders keep sending the
// rest of each request's replies (5 per responder): the replies for an
// ended gather's token arrive while its state is already reused by another
// gather. Each reply echoes its request's id, so a reply handed to the
// wrong gather is seen; Received() == Σ(Count + Skipped + Dropped) + Late()
// catches one counted twice or not at all. Both the Gather path (no
// iterator) and a ranged Stream are used.
func TestPooledStateNeverSeesAnotherGathersReply(t *testing.T) {
	env := newEnv(t)
	rnc := connect(t, env, "responders")
	for range 3 {
		_, err := rnc.Subscribe("pool", func(m *nats.Msg) {
			for range 5 {
				if m.Respond(m.Data) != nil {
					return
				}
			}
		})
		require.NoError(t, err)
	}
	require.NoError(t, rnc.Flush())
	m, err := gather.NewMux(connect(t, env, "requester"), gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	type tally struct{ count, skipped, dropped int }
	const workers, rounds = 8, 150
	tallies := make(chan tally, workers*rounds)
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				id := fmt.Sprintf("%d-%d", w, i)
				ctx, cancel := context.WithCancel(context.Background())
				var res gather.Result
				var err error
				switch i % 4 {
				case 0: // ends after the first reply; 14 more follow
					res, err = gather.Gather(ctx, m, "pool", []byte(id), gather.Timeout(time.Minute), gather.MaxReplies(1))
				case 1: // a break
					var s *gather.Stream
					if s, err = m.Stream(ctx, "pool", []byte(id), gather.Timeout(time.Minute)); err == nil {
						for r := range s.Replies() {
							res.Replies = append(res.Replies, r)
							break
						}
						var got gather.Result
						got, err = s.Result()
						got.Replies = res.Replies
						res = got
					}
				case 2: // a cancel from inside the loop
					var s *gather.Stream
					if s, err = m.Stream(ctx, "pool", []byte(id), gather.Timeout(time.Minute), gather.PendingLimits(2, gather.DefaultPendingBytes)); err == nil {
						for r := range s.Replies() {
							res.Replies = append(res.Replies, r)
							cancel()
						}
						var got gather.Result
						got, err = s.Result()
						got.Replies = res.Replies
						res = got
					}
				case 3: // a short deadline
					res, err = gather.Gather(ctx, m, "pool", []byte(id), gather.Timeout(time.Millisecond), gather.PendingLimits(3, gather.DefaultPendingBytes))
				}
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, nats.ErrSlowConsumer) {
					errs <- fmt.Errorf("gather %s: %w", id, err)
				}
				for _, r := range res.Replies {
					if string(r.Msg.Data) != id {
						errs <- fmt.Errorf("gather %s was handed a reply of %q", id, r.Msg.Data)
					}
				}
				tallies <- tally{res.Count, res.Skipped, res.Dropped}
			}
		}()
	}
	wg.Wait()
	close(tallies)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sum := 0
	for tl := range tallies {
		sum += tl.count + tl.skipped + tl.dropped
	}
	// Every gather has returned: the law holds at any moment from now on,
	// also while late replies still arrive (each is Received and Late
	// under one lock). Read both under that lock's order: Late first.
	require.NoError(t, m.RC().Flush())
	received, late := m.Counts()
	assert.Equal(t, received, sum+late)
}

// The same load, ended from outside: while the gathers run, nc begins to
// drain and the Mux is closed, in either order. Every gather returns (no
// hang), none is handed another's reply, and the conservation law holds.
func TestCloseAndDrainDuringPooledGathers(t *testing.T) {
	for _, order := range []string{"close-then-drain", "drain-then-close"} {
		t.Run(order, func(t *testing.T) {
			env := newEnv(t)
			rnc := connect(t, env, "responders")
			started := make(chan struct{})
			var once sync.Once
			_, err := rnc.Subscribe("pool", func(m *nats.Msg) {
				once.Do(func() { close(started) })
				for range 5 {
					if m.Respond(m.Data) != nil {
						return
					}
				}
			})
			require.NoError(t, err)
			require.NoError(t, rnc.Flush())
			nc := connect(t, env, "requester")
			m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
			require.NoError(t, err)

			var sum, bad int
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						id := fmt.Sprintf("%d-%d", w, i)
						res, err := gather.Gather(context.Background(), m, "pool", []byte(id), gather.Timeout(time.Minute), gather.MaxReplies(1+i%5))
						mu.Lock()
						sum += res.Count + res.Skipped + res.Dropped
						for _, r := range res.Replies {
							if string(r.Msg.Data) != id {
								bad++
							}
						}
						mu.Unlock()
						if err != nil {
							return // the Mux closed or nc drained: no more gathers
						}
					}
				}()
			}
			<-started
			if order == "close-then-drain" {
				require.NoError(t, m.Close())
				require.NoError(t, nc.Drain())
			} else {
				require.NoError(t, nc.Drain())
				require.NoError(t, m.Close())
			}
			wg.Wait()
			assert.Zero(t, bad, "replies handed to another gather")
			received, late := m.Counts()
			assert.Equal(t, received, sum+late)
		})
	}
}
