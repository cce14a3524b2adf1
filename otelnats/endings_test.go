package otelnats_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"

	"reqreply/denials"
	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/multireply/variants"
	"reqreply/otelnats"
)

// requireSpansEnded requires that every span rec started has ended, and
// that each has error status exactly when it has an error.type.
func requireSpansEnded(t *testing.T, rec recorded) {
	t.Helper()
	require.Len(t, rec.spans.Ended(), len(rec.spans.Started()), "every span started has ended")
	for _, s := range rec.spans.Ended() {
		failed := attr(s, otelnats.KeyErrorType).AsString() != ""
		assert.Equal(t, failed, s.Status().Code == codes.Error, "span %s: error status with error.type", s.Name())
	}
}

// However a traced request ends (answered, no responders, timed out,
// cancelled, closed during the wait, refused up front, denied: the endings
// of clitest.RequestEndings, with denials attached from outside as Greet
// does), it ends on time, leaves no subscription or goroutine behind, and
// ends its span.
func TestRequestEndingsLeaveNothing(t *testing.T) {
	rec := newRecorded(t)
	clitest.RequestEndings(t, "svc.", func(ctx context.Context, nc *nats.Conn, token string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		subject := "svc." + token
		dctx, stop := denials.Context(ctx, nc, subject)
		defer stop()
		_, err := rec.tel.Request(dctx, nc, subject, nil)
		return denials.Err(dctx, err)
	})
	requireSpansEnded(t, rec)
	assert.NotEmpty(t, rec.named("request svc.answer"))
}

// lockedService starts a locked-down server serving svc.*, with the
// responders of the endings: svc.answer answers, svc.silent never does,
// svc.hold never does and sends on held when it has the request.
func lockedService(t *testing.T) (func(endings []clitest.Ending), chan struct{}) {
	t.Helper()
	s, env, ids := clitest.Locked(t, "svc.*")
	svc, err := env.Connect("service", ids[cli.Responder].Options()...)
	require.NoError(t, err)
	held := make(chan struct{}, 1)
	for subject, h := range map[string]nats.MsgHandler{
		"svc.answer": func(m *nats.Msg) { _ = m.Respond([]byte("ok")) },
		"svc.silent": func(*nats.Msg) {},
		"svc.hold":   func(*nats.Msg) { held <- struct{}{} },
	} {
		_, err := svc.Subscribe(subject, h)
		require.NoError(t, err)
	}
	require.NoError(t, svc.Flush())
	return func(endings []clitest.Ending) { clitest.RunEndings(t, s, env, ids, endings) }, held
}

// A traced request whose connection drains while it waits ends, leaves
// nothing behind and ends its span.
func TestRequestDrained(t *testing.T) {
	rec := newRecorded(t)
	run, held := lockedService(t)
	run([]clitest.Ending{{
		Name: "drained during the wait",
		Call: func(ctx context.Context, nc *nats.Conn) error {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			_, err := rec.tel.Request(ctx, nc, "svc.hold", nil)
			if nc.IsDraining() || nc.IsClosed() {
				return nil // whatever nats.go says then: what matters is what is left
			}
			return err
		},
		During:  func(nc *nats.Conn, _ context.CancelFunc) { _ = nc.Drain() },
		Trigger: held,
	}})
	requireSpansEnded(t, rec)
	require.Len(t, rec.named("request svc.hold"), 1)
}

// However a traced gather ends, in every variant (answered, no responders,
// its deadline, cancelled, closed during the wait, drained during the wait,
// refused up front), it leaves no subscription or goroutine behind and ends
// its span, with error status exactly when the gather has an error.
func TestGatherEndingsLeaveNothing(t *testing.T) {
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			rec := newRecorded(t)
			run, held := lockedService(t)
			// gatherOn gathers subject on a variant of nc's, released
			// before it returns; with check, it checks the Result against
			// the error and the gather's span.
			gatherOn := func(subject string, opts ...gather.Option) func(ctx context.Context, nc *nats.Conn) error {
				return func(ctx context.Context, nc *nats.Conn) error {
					v, release, err := variants.New(name, nc)
					if err != nil {
						return err
					}
					defer func() { _ = release() }()
					res, err := rec.tel.Gather(ctx, v, subject, nil, opts...)
					if res.Reason != gather.StopNone {
						assert.Equal(t, err != nil, !res.Reason.Normal(), "%v: %v", res.Reason, err)
					}
					return err
				}
			}
			closeIt := func(nc *nats.Conn, _ context.CancelFunc) { nc.Close() }
			cancelIt := func(_ *nats.Conn, cancel context.CancelFunc) { cancel() }
			drainIt := func(nc *nats.Conn, _ context.CancelFunc) { _ = nc.Drain() }
			const long = 10 * time.Second
			var drained error // the shared Mux's gather ends at its deadline
			if name != "shared" {
				drained = nats.ErrConnectionDraining
			}
			endings := []clitest.Ending{
				{Name: "answered", Call: gatherOn("svc.answer", gather.MaxReplies(1), gather.Timeout(long))},
				{Name: "no responders", Call: gatherOn("svc.nobody", gather.Timeout(long)), Want: nats.ErrNoResponders},
				{Name: "deadline", Call: gatherOn("svc.silent", gather.Timeout(50*time.Millisecond))},
				{Name: "cancelled", Call: gatherOn("svc.hold", gather.Timeout(long)), During: cancelIt, Trigger: held,
					Want: context.Canceled, Prompt: true},
				{Name: "closed during the wait", Call: gatherOn("svc.hold", gather.Timeout(long)), During: closeIt, Trigger: held,
					Want: nats.ErrConnectionClosed, Prompt: true},
				// The shared Mux gathers through a drain: its gather ends at its
				// deadline; the others end at the drain.
				{Name: "drained during the wait", Call: gatherOn("svc.hold", gather.Timeout(300*time.Millisecond)),
					During: drainIt, Trigger: held, Want: drained},
				{Name: "refused: bad subject", Call: gatherOn("svc.bad token"), Want: nats.ErrBadSubject},
			}
			run(endings)
			requireSpansEnded(t, rec)
			// Every ending but the refused one made one gather span.
			n := 0
			for _, s := range rec.spans.Ended() {
				if s.Name() != "" && attr(s, otelnats.KeyOperationName).AsString() == "gather" {
					n++
				}
			}
			assert.Equal(t, len(endings)-1, n)
		})
	}
}
