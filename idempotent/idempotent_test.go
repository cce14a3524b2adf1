// The middleware over both stores, on a real embedded server (and an R3
// bucket on a cluster): answered, duplicates concurrent and later, no key
// and a bad key, the store unreachable, an expired key, a responder closed
// or drained while it runs the handler.

package idempotent_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/idempotent"
	"reqreply/internal/testserver"
	"reqreply/respond"
)

const subject, group = "charge", "payments"

// ledger is the handler's own record of what it charged, per key.
type ledger struct {
	mu      sync.Mutex
	charged map[string]int
}

func (l *ledger) charge(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.charged == nil {
		l.charged = map[string]int{}
	}
	l.charged[key]++
	return l.charged[key]
}

func (l *ledger) times(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.charged[key]
}

// env is one test's servers, and how a member makes its store.
type env struct {
	servers []*server.Server
	store   func(t *testing.T, nc *nats.Conn) idempotent.Store
	js      func(t *testing.T, nc *nats.Conn) jetstream.KeyValue // nil for memory
}

// kinds are the stores under test: in memory (one store shared by the
// members of one process), a bucket on one server, an R3 bucket on a
// cluster of three.
func kinds() []struct {
	name string
	make func(t *testing.T) env
} {
	return []struct {
		name string
		make func(t *testing.T) env
	}{
		{"memory", func(t *testing.T) env {
			mem := idempotent.NewMemory(0, 0)
			return env{servers: []*server.Server{testserver.New(t)}, store: func(*testing.T, *nats.Conn) idempotent.Store { return mem }}
		}},
		{"kv", func(t *testing.T) env {
			return kvEnv(t, []*server.Server{testserver.New(t, testserver.JetStream(t))}, 1, time.Minute)
		}},
		{"kv R3", func(t *testing.T) env {
			return kvEnv(t, testserver.NewCluster(t, 3, testserver.JetStream(t)), 3, time.Minute)
		}},
	}
}

// kvEnv makes the bucket "charges" with ttl and replicas on servers, and
// returns the env whose members open it each on its own connection.
func kvEnv(t *testing.T, servers []*server.Server, replicas int, ttl time.Duration) env {
	t.Helper()
	nc := connect(t, servers[0])
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testserver.ReadyTimeout)
	defer cancel()
	_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "charges", TTL: ttl, Replicas: replicas, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	open := func(t *testing.T, nc *nats.Conn) jetstream.KeyValue {
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), testserver.ReadyTimeout)
		defer cancel()
		kv, err := js.KeyValue(ctx, "charges")
		require.NoError(t, err)
		return kv
	}
	return env{servers: servers, js: open, store: func(t *testing.T, nc *nats.Conn) idempotent.Store {
		return idempotent.NewKV(open(t, nc))
	}}
}

func connect(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// member is one queue-group member: its connection, middleware and
// subscription.
type member struct {
	nc  *nats.Conn
	mw  *idempotent.Middleware
	sub *nats.Subscription
}

// startMembers starts n members of group on subject, member i on server
// i mod len(servers), all running h through the middleware, and waits until
// the first server sees them as well as those already there.
func startMembers(t *testing.T, e env, n int, h idempotent.Func, o idempotent.Options) []*member {
	t.Helper()
	there := e.servers[0].GlobalAccount().Interest(subject)
	var ms []*member
	for i := range n {
		s := e.servers[i%len(e.servers)]
		nc := connect(t, s)
		mw := idempotent.New(e.store(t, nc), h, o)
		sub, err := nc.QueueSubscribe(subject, group, respond.Recover(mw.ServeMsg, nil))
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
		ms = append(ms, &member{nc: nc, mw: mw, sub: sub})
	}
	require.NoError(t, testserver.WaitForSubscribers(e.servers[0], subject, there+n))
	return ms
}

// runs sums the members' handler runs.
func runs(ms []*member) (n int64) {
	for _, m := range ms {
		n += m.mw.Stats().Runs
	}
	return n
}

// charger is the handler: it charges the key in l, once per run, after
// gate (if not nil) lets it, and answers "charged <n>".
func charger(l *ledger, entered chan<- string, gate <-chan struct{}) idempotent.Func {
	return func(m *nats.Msg) *nats.Msg {
		if entered != nil {
			entered <- idempotent.KeyOf(m)
		}
		if gate != nil {
			<-gate
		}
		n := l.charge(idempotent.KeyOf(m))
		return &nats.Msg{Data: fmt.Appendf(nil, "charged %d", n)}
	}
}

func request(t *testing.T, nc *nats.Conn, msg *nats.Msg) *nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testserver.ReadyTimeout)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	require.NoError(t, err)
	return reply
}

// TestOncePerKey: a request answered, copies later (replayed), no key, a
// bad key; on every store, and no subscription left on the member.
func TestOncePerKey(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(kind.name, func(t *testing.T) {
			e := kind.make(t)
			var l ledger
			entered, gate := make(chan string, 8), make(chan struct{})
			ms := startMembers(t, e, 3, charger(&l, entered, gate), idempotent.Options{})
			nc := connect(t, e.servers[0])
			before, err := testserver.FootprintOf(e.servers[0], ms[0].nc)
			require.NoError(t, err)

			// Answered, then a copy later: the stored reply, replayed.
			close(gate)
			req := idempotent.NewRequest(subject, []byte("10.00"))
			first := request(t, nc, req)
			assert.Equal(t, "charged 1", string(first.Data))
			assert.Empty(t, first.Header.Get(idempotent.ReplayedHeader))
			<-entered
			for range 3 {
				again := request(t, nc, req)
				assert.Equal(t, "charged 1", string(again.Data))
				assert.Equal(t, "true", again.Header.Get(idempotent.ReplayedHeader))
			}
			assert.Equal(t, 1, l.times(idempotent.KeyOf(req)))

			// No key: every copy runs, unprotected.
			plain := &nats.Msg{Subject: subject}
			request(t, nc, plain)
			request(t, nc, plain)
			<-entered
			<-entered
			assert.Equal(t, 2, l.times(""))

			// A bad key: refused with 400, not run.
			bad := &nats.Msg{Subject: subject}
			idempotent.SetKey(bad, "has space")
			err = respond.ErrorOf(request(t, nc, bad))
			var serr *respond.ServiceError
			require.ErrorAs(t, err, &serr)
			assert.Equal(t, "400", serr.Code)
			assert.Equal(t, int64(3), runs(ms))

			f, err := testserver.SettleFootprint(e.servers[0], ms[0].nc, func(f testserver.Footprint) bool { return f.Client == before.Client })
			require.NoError(t, err)
			assert.Equal(t, before.Client, f.Client, "a member kept a subscription")
		})
	}
}

// TestConcurrentCopies sends five copies of one request at once to three
// members while the handler is held: it runs once, and every copy gets its
// reply.
func TestConcurrentCopies(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(kind.name, func(t *testing.T) {
			e := kind.make(t)
			var l ledger
			entered, gate := make(chan string, 8), make(chan struct{})
			ms := startMembers(t, e, 3, charger(&l, entered, gate), idempotent.Options{})
			nc := connect(t, e.servers[0])

			req := idempotent.NewRequest(subject, []byte("10.00"))
			inbox := nc.NewInbox()
			replies, err := nc.SubscribeSync(inbox)
			require.NoError(t, err)
			defer replies.Unsubscribe()
			for range 5 {
				msg := &nats.Msg{Subject: subject, Reply: inbox, Header: req.Header, Data: req.Data}
				require.NoError(t, nc.PublishMsg(msg))
			}
			require.NoError(t, nc.Flush())
			<-entered // one copy runs; the others wait (or have not arrived)
			close(gate)
			for range 5 {
				r, err := replies.NextMsg(testserver.ReadyTimeout)
				require.NoError(t, err)
				assert.Equal(t, "charged 1", string(r.Data))
			}
			assert.Equal(t, 1, l.times(idempotent.KeyOf(req)))
			assert.Equal(t, int64(1), runs(ms))
		})
	}
}

// TestStoreUnreachable: with the bucket gone (deleted; a cluster without a
// majority), the middleware answers 503 and the handler never runs.
func TestStoreUnreachable(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T) env
		cut  func(t *testing.T, e env)
	}{
		{"bucket deleted", func(t *testing.T) env {
			return kvEnv(t, []*server.Server{testserver.New(t, testserver.JetStream(t))}, 1, time.Minute)
		}, func(t *testing.T, e env) {
			js, err := jetstream.New(connect(t, e.servers[0]))
			require.NoError(t, err)
			require.NoError(t, js.DeleteKeyValue(context.Background(), "charges"))
		}},
		{"cluster without a majority", func(t *testing.T) env {
			return kvEnv(t, testserver.NewCluster(t, 3, testserver.JetStream(t)), 3, time.Minute)
		}, func(t *testing.T, e env) {
			testserver.Shutdown(e.servers[1:]...)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.make(t)
			var l ledger
			failed := make(chan error, 1)
			ms := startMembers(t, e, 1, charger(&l, nil, nil), idempotent.Options{
				Wait:   500 * time.Millisecond,
				Failed: func(_ *nats.Msg, err error) { failed <- err },
			})
			tc.cut(t, e)
			nc := connect(t, e.servers[0])
			err := respond.ErrorOf(request(t, nc, idempotent.NewRequest(subject, nil)))
			var serr *respond.ServiceError
			require.ErrorAs(t, err, &serr)
			assert.Equal(t, "503", serr.Code)
			assert.Contains(t, serr.Description, idempotent.ErrStore.Error())
			require.ErrorIs(t, <-failed, idempotent.ErrStore)
			assert.Zero(t, runs(ms))
			assert.Equal(t, int64(1), ms[0].mw.Stats().Refused)
		})
	}
}

// TestExpiredKey: once the store has dropped a key (Memory's MaxAge, the
// bucket's TTL), a copy that arrives runs the handler again: the limit the
// docs state.
func TestExpiredKey(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Unix(0, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		mem := idempotent.NewMemory(2, time.Minute).WithClock(clock)
		e := env{servers: []*server.Server{testserver.New(t)}, store: func(*testing.T, *nats.Conn) idempotent.Store { return mem }}
		var l ledger
		startMembers(t, e, 1, charger(&l, nil, nil), idempotent.Options{})
		nc := connect(t, e.servers[0])
		req := idempotent.NewRequest(subject, nil)
		assert.Equal(t, "charged 1", string(request(t, nc, req).Data))
		mu.Lock()
		now = now.Add(time.Minute)
		mu.Unlock()
		assert.Equal(t, "charged 2", string(request(t, nc, req).Data), "an expired key runs again")

		// By count: a third key drops the oldest of two.
		a, b, c := idempotent.NewRequest(subject, nil), idempotent.NewRequest(subject, nil), idempotent.NewRequest(subject, nil)
		for _, r := range []*nats.Msg{a, b, c} {
			request(t, nc, r)
		}
		assert.LessOrEqual(t, mem.Len(), 2)
		assert.Equal(t, "charged 2", string(request(t, nc, a).Data), "a key dropped by count runs again")
	})
	t.Run("kv", func(t *testing.T) {
		e := kvEnv(t, []*server.Server{testserver.New(t, testserver.JetStream(t))}, 1, 300*time.Millisecond)
		var l ledger
		ms := startMembers(t, e, 1, charger(&l, nil, nil), idempotent.Options{})
		nc := connect(t, e.servers[0])
		req := idempotent.NewRequest(subject, nil)
		assert.Equal(t, "charged 1", string(request(t, nc, req).Data))
		kv := e.js(t, nc)
		require.True(t, testserver.Settle(func() bool {
			_, err := kv.Get(context.Background(), idempotent.KeyOf(req))
			return err != nil
		}), "the bucket kept the key past its TTL")
		assert.Equal(t, "charged 2", string(request(t, nc, req).Data), "an expired key runs again")
		assert.Equal(t, int64(2), runs(ms))
	})
}

// TestResponderEnds: the member running the handler closes its connection
// (it dies holding the claim) or drains while the handler runs. Closed: a
// copy on another member waits, is refused with 409, and never runs it
// again. Drained: the handler finishes, its reply is stored, and a later
// copy is answered with it.
func TestResponderEnds(t *testing.T) {
	for _, kind := range kinds() {
		for _, how := range []string{"closed", "drained"} {
			t.Run(kind.name+"/"+how, func(t *testing.T) {
				e := kind.make(t)
				var l ledger
				entered, gate := make(chan string, 8), make(chan struct{})
				ms := startMembers(t, e, 1, charger(&l, entered, gate), idempotent.Options{Wait: 300 * time.Millisecond})
				nc := connect(t, e.servers[0])
				req := idempotent.NewRequest(subject, nil)
				inbox := nc.NewInbox()
				replies, err := nc.SubscribeSync(inbox)
				require.NoError(t, err)
				defer replies.Unsubscribe()
				require.NoError(t, nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Header: req.Header}))
				<-entered

				// A second member joins; the first ends while it runs.
				others := startMembers(t, e, 1, charger(&l, entered, nil), idempotent.Options{Wait: 300 * time.Millisecond})
				if how == "closed" {
					ms[0].nc.Close()
				} else {
					require.NoError(t, ms[0].nc.Drain())
				}
				require.NoError(t, testserver.WaitForSubscribers(e.servers[0], subject, 1))
				copyReply := make(chan *nats.Msg, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), testserver.ReadyTimeout)
					defer cancel()
					r, err := nc.RequestMsgWithContext(ctx, req)
					if err != nil {
						r = &nats.Msg{Data: []byte(err.Error())}
					}
					copyReply <- r
				}()
				close(gate)
				r := <-copyReply
				if how == "closed" {
					// The memory store is the process's: the dead member's
					// run still stores its reply there, so the copy may get
					// it; a bucket written through the closed connection
					// stays claimed.
					if err := respond.ErrorOf(r); err != nil {
						var serr *respond.ServiceError
						require.ErrorAs(t, err, &serr)
						assert.Equal(t, "409", serr.Code)
					} else {
						assert.Equal(t, "charged 1", string(r.Data))
					}
				} else {
					first, err := replies.NextMsg(testserver.ReadyTimeout)
					require.NoError(t, err)
					assert.Equal(t, "charged 1", string(first.Data))
					assert.Equal(t, "charged 1", string(r.Data))
					assert.Equal(t, "true", r.Header.Get(idempotent.ReplayedHeader))
				}
				assert.Equal(t, 1, l.times(idempotent.KeyOf(req)), "charged more than once")
				assert.Zero(t, others[0].mw.Stats().Runs)
				if !strings.HasPrefix(kind.name, "kv") || how != "closed" {
					return
				}
				// Once the claim fails closed the caller learns its
				// outcome is unknown; no copy runs while the bucket keeps
				// the claim.
				assert.Equal(t, int64(1), others[0].mw.Stats().Refused)
			})
		}
	}
}

// TestPanicStored: a handler that panics is not run again for its key: the
// first copy gets respond.Recover's 500, the next the stored 500, replayed.
func TestPanicStored(t *testing.T) {
	s := testserver.New(t)
	e := env{servers: []*server.Server{s}, store: func(*testing.T, *nats.Conn) idempotent.Store { return idempotent.NewMemory(0, 0) }}
	var calls atomic.Int64
	ms := startMembers(t, e, 1, func(*nats.Msg) *nats.Msg {
		calls.Add(1)
		panic("card network gone")
	}, idempotent.Options{})
	nc := connect(t, s)
	req := idempotent.NewRequest(subject, nil)
	for i, replayed := range []string{"", "true"} {
		reply := request(t, nc, req)
		var serr *respond.ServiceError
		require.ErrorAs(t, respond.ErrorOf(reply), &serr, "copy %d", i)
		assert.Equal(t, "500", serr.Code)
		assert.Equal(t, replayed, reply.Header.Get(idempotent.ReplayedHeader))
	}
	assert.Equal(t, int64(1), calls.Load())
	assert.Equal(t, idempotent.Stats{Runs: 1, Replays: 1}, ms[0].mw.Stats())
}

// TestCheckKey: what a key may be.
func TestCheckKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{idempotent.NewKey(), true},
		{"order-42_a=b", true},
		{strings.Repeat("k", idempotent.MaxKeyLen), true},
		{"", false},
		{strings.Repeat("k", idempotent.MaxKeyLen+1), false},
		{"a.b", false},
		{"a b", false},
		{"a*", false},
		{"ключ", false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			err := idempotent.CheckKey(tc.key)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, idempotent.ErrBadKey)
		})
	}
}
