package gather_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// Cases found by trying to break the gather, kept so they stay fixed.

// A MaxReplies beyond what nats-server reads in an UNSUB count (9 digits)
// must not unsubscribe the inbox at once (the inbox variant once handed it
// to AutoUnsubscribe).
func TestHugeMax(t *testing.T) {
	env := newEnv(t)
	echoN(3)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		for _, n := range []int{math.MaxInt32, math.MaxInt} {
			// All three replies arrive (an inbox unsubscribed at once would
			// get none and end only at the deadline): then stop.
			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(n))
			require.NoError(t, err)
			got := 0
			for range s.Replies() {
				if got++; got == 3 {
					break
				}
			}
			res, err := s.Result()
			require.NoError(t, err)
			assert.Equal(t, gather.StopCaller, res.Reason, "variant %s, max %d", v.Name(), n)
			assert.Equal(t, 3, res.Count, "variant %s, max %d", v.Name(), n)
		}
	}
}

// The deadline and a cancel end a gather even while replies wait for a
// slow consumer; replies already waiting are still taken after a short
// stall, since they arrived within it.
func TestBacklog(t *testing.T) {
	const burst = 200
	env := newEnv(t)
	rc := connect(t, env, "responders")
	sent := make(chan struct{}, 8)
	_, err := rc.Subscribe("svc", func(m *nats.Msg) {
		defer func() { sent <- struct{}{} }()
		for range burst {
			if m.Respond([]byte("x")) != nil {
				return
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	nc := connect(t, env, "requester")
	// waitForBurst holds the consumer on its first reply until the whole
	// burst is in the client: the responder has sent it all, its flush says
	// the server has it, the requester's flush that the client has.
	waitForBurst := func(v gather.Variant) {
		<-sent
		require.NoError(t, rc.Flush())
		flushReceiver(t, v, nc)
	}
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name()+"/deadline", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			// The context's deadline is the gather's.
			s, err := v.Stream(ctx, "svc", nil)
			require.NoError(t, err)
			n := 0
			for range s.Replies() {
				if n++; n == 1 {
					waitForBurst(v)
					<-ctx.Done() // the gather's deadline has passed
				}
			}
			res, err := s.Result()
			require.NoError(t, err)
			assert.Equal(t, gather.StopDeadline, res.Reason)
			assert.Equal(t, 1, res.Count, "no reply is handed out after the deadline")
		})
		t.Run("variant="+v.Name()+"/cancel", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := v.Stream(ctx, "svc", nil, gather.Timeout(time.Hour))
			require.NoError(t, err)
			n := 0
			for range s.Replies() {
				if n++; n == 1 {
					waitForBurst(v)
					cancel()
				}
			}
			res, err := s.Result()
			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, gather.StopCancelled, res.Reason)
			assert.Equal(t, 1, res.Count, "no reply is handed out after a cancel")
		})
		t.Run("variant="+v.Name()+"/tiny stall", func(t *testing.T) {
			if v.Name() != "inbox" {
				// Their replies pass through a goroutine of nats.go (the
				// Mux's subscription, natsext's stall wait) after they reach
				// the client, and a nanosecond stall may end before it.
				t.Skip("a reply in the client is not yet in the gather")
			}
			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Hour), gather.Stall(time.Nanosecond))
			require.NoError(t, err)
			n := 0
			for range s.Replies() {
				if n++; n == 1 {
					waitForBurst(v)
				}
			}
			res, err := s.Result()
			require.NoError(t, err)
			assert.Equal(t, gather.StopStalled, res.Reason)
			assert.Equal(t, burst, res.Count, "replies already in the client arrived within the stall")
		})
	}
}

// Timeout counts from when the request goes out (the Stream is ranged), and
// a context that ends before then sends nothing.
func TestDeadlineFromTheRequest(t *testing.T) {
	env := newEnv(t)
	echoN(1)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(1))
			require.NoError(t, err)
			// However long the caller waits before ranging, the full minute
			// is still ahead of the request.
			res, err := gather.Collect(s)
			require.NoError(t, err)
			assert.Equal(t, gather.StopMax, res.Reason)
			assert.Greater(t, res.Deadline, 59*time.Second)

			ctx, cancel := context.WithCancel(context.Background())
			s, err = v.Stream(ctx, "svc", nil, gather.Timeout(time.Minute))
			require.NoError(t, err)
			cancel()
			before := outMsgs(v, nc)
			res, err = gather.Collect(s)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, gather.StopCancelled, res.Reason)
			assert.Equal(t, before, outMsgs(v, nc), "nothing sent after the cancel")
		})
	}
}

// A connection that is closed ends a gather with StopClosed, whatever the
// variant.
func TestClosedConnection(t *testing.T) {
	t.Run("closed before ranging", func(t *testing.T) {
		env := newEnv(t)
		nc := connect(t, env, "requester")
		vs := newVariants(t, nc)
		var streams []*gather.Stream
		for _, v := range vs {
			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Minute))
			require.NoError(t, err)
			streams = append(streams, s)
		}
		nc.Close()
		for i, s := range streams {
			res, err := gather.Collect(s)
			assert.Equal(t, gather.StopClosed, res.Reason, vs[i].Name())
			assert.True(t, errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription), "%s: %v", vs[i].Name(), err)
		}
		// Once closed, a gather is refused when it is made.
		for _, v := range vs {
			_, err := v.Stream(context.Background(), "svc", nil)
			assert.ErrorIs(t, err, nats.ErrConnectionClosed, v.Name())
		}
	})
	// A drain mid-gather: see TestDrainMidGather.
}

// Bad headers, over-long subjects and a zero Mux are refused, not sent.
func TestRefusedBeforeSending(t *testing.T) {
	env := newEnv(t)
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		subs := nc.NumSubscriptions()
		_, err := v.Stream(context.Background(), "svc", nil, gather.Header(nats.Header{"Bad Key": {"1"}}))
		assert.ErrorIs(t, err, nats.ErrBadHeaderMsg, v.Name())
		_, err = v.Stream(context.Background(), strings.Repeat("a", gather.MaxSubjectLen+1), nil)
		assert.ErrorIs(t, err, nats.ErrBadSubject, v.Name())
		assert.Equal(t, subs, nc.NumSubscriptions(), v.Name())
	}
	assert.True(t, nc.IsConnected(), "the connection survives")
	var zero gather.Mux
	assert.NoError(t, zero.Close())
	_, err := zero.Stream(context.Background(), "svc", nil)
	assert.ErrorIs(t, err, nats.ErrInvalidArg)
}

// A Stream ranged from two goroutines sends one request; the second range
// yields nothing, and Result waits for the first.
func TestStreamRangedTwice(t *testing.T) {
	env := newEnv(t)
	echoN(2)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()
	s, err := m.Stream(context.Background(), "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(2))
	require.NoError(t, err)
	res, err := s.Result()
	require.NoError(t, err)
	assert.Equal(t, gather.StopNone, res.Reason, "not ranged yet")

	before := m.RC().Stats().OutMsgs // the Mux publishes on its own connection
	counts := make(chan int, 2)
	for range 2 {
		go func() {
			n := 0
			for range s.Replies() {
				n++
			}
			counts <- n
		}()
	}
	a, b := <-counts, <-counts
	assert.Equal(t, 2, a+b)
	assert.Equal(t, before+1, m.RC().Stats().OutMsgs, "one request")
	res, err = s.Result()
	require.NoError(t, err)
	assert.Equal(t, gather.StopMax, res.Reason)
}

// A user denied subscribing to inboxes gets an error wrapping
// nats.ErrPermissionViolation from the inbox variant (its connection is
// made with nats.PermissionErrOnSubscribe, as internal/cli makes them), not
// a silent deadline.
func TestSubscribePermissionDenied(t *testing.T) {
	users := []*server.User{
		{Username: "svc", Password: "svc"},
		{Username: "nosub", Password: "nosub", Permissions: &server.Permissions{
			Subscribe: &server.SubjectPermission{Deny: []string{"_INBOX.>"}},
		}},
	}
	s := testserver.New(t, testserver.WithUsers(users...))
	env := cli.NewEnv("multireply", "nats://svc:svc@"+strings.TrimPrefix(s.ClientURL(), "nats://"))
	t.Cleanup(func() { _ = env.Close() })
	echoN(1)(t, connect(t, env, "responders"), "svc")
	denied := cli.NewEnv("multireply", "nats://nosub:nosub@"+strings.TrimPrefix(s.ClientURL(), "nats://"))
	t.Cleanup(func() { _ = denied.Close() })
	nc := connect(t, denied, "requester")
	res, err := gather.Gather(context.Background(), gather.Inbox{Conn: nc, Denials: variants.Hook{}}, "svc", nil, gather.Timeout(10*time.Second))
	assert.ErrorIs(t, err, nats.ErrPermissionViolation)
	assert.Equal(t, gather.StopFailed, res.Reason)
}

// A consumer whose loop body panics (and is recovered above, as an HTTP
// server or a service framework does) still releases the gather: the inbox
// is unsubscribed, the Mux's token removed. Before, the panic skipped the
// release, so the inbox stayed subscribed and the Mux kept the token (and
// every reply for it) forever, and after nc's drain never closed its own
// connection.
func TestPanickingConsumerReleasesGather(t *testing.T) {
	env := newEnv(t)
	echoN(3)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(3))
			require.NoError(t, err)
			func() {
				defer func() { require.Equal(t, "consumer failed", recover()) }()
				for range s.Replies() {
					panic("consumer failed")
				}
			}()
			assert.Equal(t, baseline(v), nc.NumSubscriptions(), "subscriptions left on nc")
			if m, ok := v.(*gather.Mux); ok {
				n := m.InFlight()
				assert.Zero(t, n, "tokens left registered on the Mux")
			}
			// The variant still works.
			res, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(3))
			require.NoError(t, err)
			assert.Equal(t, 3, res.Count)
		})
	}
}

// The Mux's own connection is made as nc was: with nc's credentials given
// as options (not in the URL) and nc's custom inbox prefix, so a user who
// may subscribe only to its own inboxes gathers through the Mux, and the
// server's no-responders status, sent only to the publishing connection,
// reaches the gather.
func TestMuxConnectsAsNc(t *testing.T) {
	users := []*server.User{
		{Username: "svc", Password: "svc"},
		{Username: "alice", Password: "alice", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"svc", "nobody"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"alice.inbox.>"}},
		}},
	}
	s := testserver.New(t, testserver.WithUsers(users...))
	env := cli.NewEnv("multireply", s.ClientURL())
	t.Cleanup(func() { _ = env.Close() })
	rc, err := env.Connect("responders", nats.UserInfo("svc", "svc"))
	require.NoError(t, err)
	echoN(2)(t, rc, "svc")
	nc, err := env.Connect("requester", nats.UserInfo("alice", "alice"), nats.CustomInboxPrefix("alice.inbox"))
	require.NoError(t, err)
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	assert.Equal(t, "multireply requester mux", m.RC().Opts.Name)
	assert.True(t, strings.HasPrefix(m.Prefix(), "alice.inbox."), m.Prefix())

	res, err := gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(2))
	require.NoError(t, err)
	assert.Equal(t, 2, res.Count)
	res, err = gather.Gather(context.Background(), m, "nobody", nil, gather.Timeout(time.Minute))
	require.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Equal(t, gather.StopNoResponders, res.Reason)
}
