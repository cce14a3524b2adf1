package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
)

// checkLaws asserts the conservation laws of a Result on its own (load.go):
// every request in exactly one bucket, the members' counts adding up to the
// counted replies, and Exact only when each request got exactly want
// replies over all its attempts.
func checkLaws(tb testing.TB, r *Result, want int) {
	tb.Helper()
	assert.Equal(tb, r.Requests, r.Answered+r.TimedOut+r.Failed+r.Unsent,
		"answered %d + timed out %d + failed %d + unsent %d ≠ requests %d", r.Answered, r.TimedOut, r.Failed, r.Unsent, r.Requests)
	sum, errs := 0, 0
	for _, m := range r.Members {
		sum += m.Count()
		errs += m.Errors
		assert.True(tb, slices.IsSorted(m.Latencies), "%s's latencies unsorted", m.Name)
	}
	assert.Equal(tb, r.Replies, sum, "replies ≠ the members' counts")
	assert.Equal(tb, r.Errors, errs, "error replies ≠ the members' error counts")
	assert.LessOrEqual(tb, r.RetryAnswered, r.Retried)
	assert.LessOrEqual(tb, r.RetryAnswered, r.Answered)
	assert.GreaterOrEqual(tb, r.Replies, r.Answered*want, "an answered request lacks counted replies")
	if r.PerRequest != nil {
		n, repeated := 0, 0
		for _, who := range r.PerRequest {
			n += len(who)
			if len(who) > want {
				repeated++
			}
		}
		assert.Equal(tb, r.Replies, n, "PerRequest ≠ replies")
		assert.Equal(tb, r.Repeated, repeated)
	}
	if r.Exact() {
		assert.Equal(tb, r.Requests*want, r.Replies, "exact, yet replies ≠ requests × %d", want)
		assert.Zero(tb, r.TimedOut+r.Failed+r.Unsent+r.Errors+r.Duplicates+r.Late+r.Repeated)
	}
}

// checkSent asserts the replies law against the responders' own count of
// replies sent (once they have settled): each is counted, a duplicate or
// late, with no fourth bucket.
func checkSent(tb testing.TB, r *Result, sent int64) {
	tb.Helper()
	assert.EqualValues(tb, sent, r.Replies+r.Duplicates+r.Late,
		"responders sent %d replies; the requester counted %d + %d duplicate + %d late", sent, r.Replies, r.Duplicates, r.Late)
}

// TestRetryCreditsFirstReplies runs one request to two queue
// groups (two replies wanted), retry on; group A answers every attempt,
// group B skips the first, as a member that died would. Group A has then
// answered the request twice: both its replies are counted and credited,
// the request is Repeated, and the run is not exact. Before the fix the
// first reply was thrown away by the retry, credited to no one, and the run
// was "exact".
func TestRetryCreditsFirstReplies(t *testing.T) {
	s, env := newServerEnv(t)
	a, err := join(env, Subject, "a", "a-1", MemberOptions{})
	require.NoError(t, err)
	b, err := join(env, Subject, "b", "b-1", MemberOptions{DieAt: 1})
	require.NoError(t, err)
	// b dies at the first attempt; the retry goes to its replacement. The
	// watchdog runs BeforeRetry before Load runs Settle.
	var b2 *Member
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: Subject, Requests: 1, Concurrency: 1, Timeout: time.Second, Replies: 2, Retry: true,
		BeforeRetry: func(context.Context) error {
			<-b.Died()
			// The server has dropped b before its replacement joins, so
			// the retry cannot be routed to the dead member.
			require.NoError(t, testserver.WaitForSubscribers(s, Subject, 1))
			b2, err = join(env, Subject, "b", "b-2", MemberOptions{})
			return err
		},
		Settle: func(ctx context.Context) error { return settleAll(a, b2)(ctx) },
	})
	require.NoError(t, err)
	checkLaws(t, res, 2)
	checkSent(t, res, a.Answered()+b.Answered()+b2.Answered())
	assert.EqualValues(t, 2, a.Answered(), "a answered both attempts")
	assert.Equal(t, 1, res.Retried)
	assert.False(t, res.Exact(), "%+v", res)
	if res.Late == 0 { // a's first reply came in time, as it does but on a stalled machine
		assert.Equal(t, 1, res.Repeated)
		assert.Equal(t, 3, res.Replies)
		assert.Equal(t, 2, countOf(res, "a-1"), "both of a's replies credited")
		who := slices.Clone(res.PerRequest[0])
		slices.Sort(who)
		assert.Equal(t, []string{"a-1", "a-1", "b-2"}, who)
	}
	line, verr := verdict(res, 2)
	assert.ErrorIs(t, verr, ErrNotVerified)
	assert.True(t, strings.HasPrefix(line, "NOT verified"), line)
}

// TestFaults covers what a member can do wrong and what the requester
// sees: an error or a panic in the work (the member survives and sends an
// error reply, counted in Errors, not a timeout), and a member that replies
// twice (a duplicate).
func TestFaults(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		opts    MemberOptions
		wantErr int // error replies expected of 20 requests
		wantDup int
	}{
		{name: "work returns an error on request 3", opts: MemberOptions{Work: failOn("3", errBoom)}, wantErr: 1},
		{name: "work panics on request 5", opts: MemberOptions{Work: func(req []byte) error {
			if string(req) == "5" {
				panic("no 5s here")
			}
			return nil
		}}, wantErr: 1},
		{name: "every request fails", opts: MemberOptions{Work: func([]byte) error { return errBoom }}, wantErr: 20},
		{name: "replies twice", opts: MemberOptions{ReplyTwice: true}, wantDup: 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			m, err := join(env, Subject, Group, "worker-1", tc.opts)
			require.NoError(t, err)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: 20, Concurrency: 4, Timeout: time.Minute, Settle: settleAll(m),
			})
			require.NoError(t, err)
			checkLaws(t, res, 1)
			checkSent(t, res, m.Answered())
			assert.Equal(t, 20, res.Answered, "an error reply answers its request: no timeout")
			assert.Equal(t, tc.wantErr, res.Errors)
			assert.EqualValues(t, tc.wantErr, m.Errors())
			assert.Equal(t, tc.wantDup, res.Duplicates)
			assert.Equal(t, tc.wantErr == 0 && tc.wantDup == 0, res.Exact())
			_, verr := verdict(res, 1)
			assert.Equal(t, !res.Exact(), errors.Is(verr, ErrNotVerified))
		})
	}
}

// failOn returns work that fails with err on the request whose payload is
// n.
func failOn(n string, err error) func([]byte) error {
	return func(req []byte) error {
		if string(req) == n {
			return err
		}
		return nil
	}
}

// TestErrorReplyHeaders checks the error reply itself, as nc.Request sees
// it: the member's name as payload, and the headers nats.go/micro uses.
func TestErrorReplyHeaders(t *testing.T) {
	env := newEnv(t)
	_, err := join(env, Subject, Group, "worker-1", MemberOptions{Work: func([]byte) error { panic("oops") }})
	require.NoError(t, err)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	for range 2 { // the member survived the first panic
		msg, err := nc.Request(Subject, []byte("1"), time.Minute)
		require.NoError(t, err)
		assert.Equal(t, "worker-1", string(msg.Data))
		assert.Equal(t, "handler panicked: oops", msg.Header.Get(micro.ErrorHeader))
		assert.Equal(t, "500", msg.Header.Get(micro.ErrorCodeHeader))
	}
}

// TestNoHeaderSupport runs members on a server without header support
// (no_header_support): plain replies carry no headers and work; an error reply
// cannot be sent, so the member says so on its log and sends nothing, and
// the requester counts a timeout, never a success. Without headers there is
// no no-responders status either: a request to nobody times out.
func TestNoHeaderSupport(t *testing.T) {
	s := testserver.New(t, func(o *server.Options) { o.NoHeaderSupport = true })
	env := cli.NewEnv("queuegroup", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	var log clitest.Buffer
	m, err := join(env, Subject, Group, "worker-1", MemberOptions{Work: failOn("2", errors.New("boom")), Log: &log})
	require.NoError(t, err)
	require.False(t, m.Conn().HeadersSupported())
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	res, err := Load(context.Background(), nc, LoadConfig{
		// 1 s: requests 1 and 3 must be answered in time even under -race
		// on a loaded machine; request 2 waits it out.
		Subject: Subject, Requests: 3, Concurrency: 1, Timeout: time.Second, Settle: settleAll(m),
	})
	require.NoError(t, err)
	checkLaws(t, res, 1)
	checkSent(t, res, m.Answered())
	assert.Equal(t, 2, res.Answered)
	assert.Equal(t, 1, res.TimedOut, "request 2 failed and could not say so")
	assert.Zero(t, res.Errors)
	assert.EqualValues(t, 1, m.Errors())
	assert.Contains(t, log.String(), "the server does not support headers")

	// Nobody on the subject: no 503 without headers, so a timeout.
	res, err = Load(context.Background(), nc, LoadConfig{
		Subject: "nobody.here", Requests: 1, Concurrency: 1, Timeout: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.Equal(t, 1, res.TimedOut)
}

// TestLoadNoRespondersMidRun: once the run has had an answer, a
// no-responders status fails only its own request (members gone, or not
// back yet after a reconnect), fast and counted; the run goes on.
func TestLoadNoRespondersMidRun(t *testing.T) {
	s, env := newServerEnv(t)
	members, err := startWorkers(env, DefaultConfig(), 1, 2, nil)
	require.NoError(t, err)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	for _, retry := range []bool{false, true} {
		t.Run(fmt.Sprintf("retry=%v", retry), func(t *testing.T) {
			timeout := time.Minute
			if retry {
				timeout = 2 * time.Second
			}
			res, err := Load(context.Background(), nc, LoadConfig{
				// With retry, the failed requests are re-sent at their
				// deadline: all five at once, after 2 s.
				Subject: Subject, Requests: 10, Concurrency: 10, Timeout: timeout, Retry: retry, At: 6,
				Before: func(ctx context.Context) error {
					// Requests 1..5 reach the server, which routes each to
					// a member, before the members leave; their drains
					// answer them.
					if err := nc.Flush(); err != nil {
						return err
					}
					for _, m := range members {
						if err := m.Leave(ctx); err != nil {
							return err
						}
					}
					require.NoError(t, testserver.WaitForSubscribers(s, Subject, 0))
					return nil
				},
			})
			require.NoError(t, err)
			checkLaws(t, res, 1)
			assert.Equal(t, 5, res.Answered)
			assert.Equal(t, 5, res.Failed)
			if retry {
				assert.Equal(t, 5, res.Retried)
			}
			assert.False(t, res.Exact())
		})
		// Back in the group for the next run.
		for i, m := range members {
			members[i], err = join(env, Subject, Group, m.Name, MemberOptions{})
			require.NoError(t, err)
		}
	}
}

// TestRunNoHeaderSupport plays the demos whose members reply on a server
// without header support: plain replies need no headers, so every request
// is answered and verified, micro's included.
func TestRunNoHeaderSupport(t *testing.T) {
	for _, demo := range []Demo{DemoShare, DemoMixed, DemoMicro} {
		t.Run(string(demo), func(t *testing.T) {
			s := testserver.New(t, func(o *server.Options) { o.NoHeaderSupport = true })
			env := cli.NewEnv("queuegroup", s.ClientURL())
			t.Cleanup(func() { require.NoError(t, env.Close()) })
			cfg := DefaultConfig()
			cfg.Demo = demo
			var out bytes.Buffer
			require.NoError(t, Run(context.Background(), env, cfg, &out))
			assert.Contains(t, out.String(), "verified: 30 requests")
		})
	}
}

// A run with retries whose counting ended early (a member still busy or
// disconnected at the end: Result.Unsettled) printed "verified" although a
// first attempt that was retried could still be answered later, so the
// request may have run twice.
func TestUnsettledRetryNotVerified(t *testing.T) {
	tests := []struct {
		name  string
		res   Result
		exact bool
	}{
		{name: "settled, retried", res: Result{Requests: 2, Answered: 2, Retried: 1, RetryAnswered: 1, Replies: 2}, exact: true},
		{name: "unsettled, no retry", res: Result{Requests: 2, Answered: 2, Replies: 2, Unsettled: true}, exact: true},
		{name: "unsettled, retried", res: Result{Requests: 2, Answered: 2, Retried: 1, RetryAnswered: 1, Replies: 2, Unsettled: true}, exact: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.exact, tc.res.Exact())
			line, err := verdict(&tc.res, 1)
			if tc.exact {
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(line, "verified: "), line)
				return
			}
			require.ErrorIs(t, err, ErrNotVerified)
			assert.True(t, strings.HasPrefix(line, "NOT verified: "), line)
			assert.Contains(t, line, "may have run twice")
		})
	}
}
