package probe_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// However a wait for interest (Await, AwaitNone) ends,
// it ends on time (a close or a cancel during the wait within one round
// trip, with nats.ErrConnectionClosed or context.Canceled) and leaves
// nothing behind: no subscription on the client or the server, no
// goroutine.
func TestProbeEndingsLeaveNothing(t *testing.T) {
	s, env, ids := clitest.Locked(t, "svc.*", "nobody.*")
	// Each subject svc.<n> has its own trigger: a probe on it answered.
	answered := map[string]chan struct{}{}
	for i := range 20 {
		answered["svc."+strconv.Itoa(i)] = make(chan struct{}, 1)
	}
	svc, err := env.Connect("service", ids[cli.Responder].Options()...)
	require.NoError(t, err)
	_, err = svc.Subscribe("svc.*", func(m *nats.Msg) {
		if probe.Answer(m, "a") {
			select {
			case answered[m.Subject] <- struct{}{}:
			default:
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())

	const timeout = 10 * time.Second
	n := 0
	// await returns a wait for want on a subject of its own (nobody's, or
	// svc.<n>) and the trigger of that subject.
	await := func(want *probe.Want, nobody bool, timeout time.Duration) (func(context.Context, *nats.Conn) error, <-chan struct{}) {
		n++
		subject := "svc." + strconv.Itoa(n)
		if nobody {
			subject = "nobody." + strconv.Itoa(n)
		}
		return func(ctx context.Context, nc *nats.Conn) error {
			var err error
			if want == nil {
				_, err = probe.AwaitNone(ctx, nc, subject, timeout)
			} else {
				_, err = probe.Await(ctx, nc, subject, *want, timeout)
			}
			return err
		}, answered[subject]
	}
	anyone, missing := probe.AnyResponder(), probe.AllOf("a", "missing")
	closeIt := func(nc *nats.Conn, _ context.CancelFunc) { nc.Close() }
	cancelIt := func(_ *nats.Conn, cancel context.CancelFunc) { cancel() }
	ending := func(name string, want *probe.Want, nobody bool, timeout time.Duration, e clitest.Ending) clitest.Ending {
		e.Name = name
		e.Call, e.Trigger = await(want, nobody, timeout)
		e.Prompt = e.Prompt || e.During != nil
		return e
	}
	clitest.RunEndings(t, s, env, ids, []clitest.Ending{
		ending("answered", &anyone, false, timeout, clitest.Ending{}),
		ending("no responders", &anyone, true, timeout, clitest.Ending{Want: nats.ErrNoResponders}),
		ending("timed out", &missing, false, 100*time.Millisecond, clitest.Ending{Want: nats.ErrTimeout}),
		ending("cancelled", &missing, false, timeout, clitest.Ending{During: cancelIt, Want: context.Canceled}),
		ending("connection closed during the wait", &missing, false, timeout, clitest.Ending{During: closeIt, Want: nats.ErrConnectionClosed}),
		ending("refused: connection closed before", &anyone, false, timeout, clitest.Ending{Before: (*nats.Conn).Close, Want: nats.ErrConnectionClosed}),
		ending("denied: inbox", &anyone, false, timeout, clitest.Ending{Inbox: "_INBOX", Want: nats.ErrPermissionViolation, Prompt: true}),
		ending("leaving: gone", nil, true, timeout, clitest.Ending{}),
		ending("leaving: timed out", nil, false, 100*time.Millisecond, clitest.Ending{Want: nats.ErrTimeout}),
		ending("leaving: connection closed during the wait", nil, false, timeout, clitest.Ending{During: closeIt, Want: nats.ErrConnectionClosed}),
	})
}

// A Settled wait that is met goes on until every probe is accounted for; a
// close of its connection then ends it at once (it was met: no error, or
// nats.ErrConnectionClosed if the close came before the answer that met
// it), not at its timeout. Here the first probe is never answered, so only
// the close or the timeout can end the wait.
func TestSettledWaitEndsOnClose(t *testing.T) {
	s := testserver.New(t)
	env := cli.NewEnv("probe", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	svc, err := env.Connect("service")
	require.NoError(t, err)
	answered := make(chan struct{}, 1)
	_, err = svc.Subscribe("svc", func(m *nats.Msg) {
		if probe.Is(m) && m.Header.Get(probe.Header) != "1" && probe.Answer(m, "a") {
			select {
			case answered <- struct{}{}:
			default:
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	nc, err := env.Connect("prober")
	require.NoError(t, err)

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-answered:
		case <-done:
			return
		}
		// The close comes once the answer has reached the prober's
		// connection, which the prober then reads: the wait is met, and
		// only its settling is left.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for nc.Stats().InMsgs == 0 {
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
		nc.Close()
	}()
	const timeout = 10 * time.Second
	start := time.Now()
	_, err = probe.Await(context.Background(), nc, "svc", probe.AnyResponder().Settled(), timeout)
	took := time.Since(start)
	if err != nil {
		require.ErrorIs(t, err, nats.ErrConnectionClosed)
	}
	assert.Less(t, took, 2*time.Second, "the wait must end within one round trip of the close, not at its %v timeout", timeout)
}
