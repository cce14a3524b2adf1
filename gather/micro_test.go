package gather_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/multireply/variants"
	"reqreply/probe"
	"reqreply/respond"
)

// startInstances starts n instances of the micro service "inv", each on
// its own connection, each with an endpoint on subject without a queue
// group whose replies carry its instance id (gather.Identify); the last
// answers with a service error. It returns the services.
func startInstances(t *testing.T, nc *nats.Conn, subject string, n int) []micro.Service {
	t.Helper()
	var svcs []micro.Service
	for i := range n {
		svc, err := micro.AddService(nc, micro.Config{Name: "inv", Version: "1.0.0"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = svc.Stop() })
		h := micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte("ok")) })
		if i == n-1 {
			h = func(r micro.Request) { _ = r.Error("500", "broken", nil) }
		}
		require.NoError(t, svc.AddEndpoint("count", gather.Identify(svc.Info().ID, h),
			micro.WithEndpointSubject(subject), micro.WithEndpointQueueGroupDisabled()))
		svcs = append(svcs, svc)
	}
	require.NoError(t, nc.Flush())
	return svcs
}

// Discover finds every instance of a micro service, Identify makes each
// endpoint reply (an error reply too) carry its instance id, and Expect
// over the discovered ids ends the gather at the last answer, in every
// variant; a stopped instance is named in Missing.
func TestDiscoverIdentifyExpect(t *testing.T) {
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			env := newEnv(t)
			rc := connect(t, env, "responders")
			svcs := startInstances(t, rc, "inv.count", 3)
			nc := connect(t, env, "requester")
			v, free, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = free() }()

			ids, err := gather.Discover(context.Background(), v, "inv", gather.Timeout(10*time.Second), gather.MaxReplies(3))
			require.NoError(t, err)
			var want []string
			for _, s := range svcs {
				want = append(want, s.Info().ID)
			}
			slices.Sort(want)
			require.Equal(t, want, ids)

			res, err := gather.Gather(context.Background(), v, "inv.count", nil, gather.Timeout(time.Hour), gather.Expect(ids...))
			require.NoError(t, err)
			assert.Equal(t, gather.StopExpected, res.Reason)
			assert.Nil(t, res.Missing)
			var got []string
			for _, r := range res.Replies {
				got = append(got, r.Responder)
			}
			slices.Sort(got)
			assert.Equal(t, want, got)
			errs := 0
			for _, r := range res.Replies {
				if r.ServiceError != nil {
					errs++
				}
			}
			assert.Equal(t, 1, errs, "the error reply names its instance too")

			// One instance stops: the gather waits out its deadline and
			// names it.
			require.NoError(t, svcs[0].Stop())
			require.NoError(t, rc.Flush()) // the server has the unsubscribe
			res, err = gather.Gather(context.Background(), v, "inv.count", nil, gather.Timeout(300*time.Millisecond), gather.Expect(ids...))
			require.NoError(t, err)
			assert.Equal(t, gather.StopDeadline, res.Reason)
			assert.Equal(t, []string{svcs[0].Info().ID}, res.Missing)
		})
	}
}

// The suite's responder helpers name themselves in one header: the one a
// gather reads.
func TestOneResponderHeader(t *testing.T) {
	assert.Equal(t, gather.ResponderHeader, probe.ResponderHeader)
	assert.Equal(t, gather.ResponderHeader, respond.ResponderHeader)
}

// Discover's refusals: a bad service name (nats.ErrBadSubject), nobody
// running the service (nats.ErrNoResponders), an answer that is not a PING
// response.
func TestDiscoverErrors(t *testing.T) {
	env := newEnv(t)
	rc := connect(t, env, "responders")
	sequence("not json")(t, rc, "$SRV.PING.fake")
	nc := connect(t, env, "requester")
	v := gather.Inbox{Conn: nc}
	_, err := gather.Discover(context.Background(), v, "bad name")
	assert.ErrorIs(t, err, nats.ErrBadSubject)
	_, err = gather.Discover(context.Background(), v, "nobody")
	assert.ErrorIs(t, err, nats.ErrNoResponders)
	_, err = gather.Discover(context.Background(), v, "fake")
	assert.ErrorContains(t, err, "not a PING response")
	assert.Zero(t, nc.NumSubscriptions())
}
