// Every way a trace ends, and what it leaves behind: answered, no
// responders, no report (timed out), the context's deadline, cancelled, the
// connection closed or drained during the wait, refused up front; after
// each, the client's and the server's subscriptions and the goroutines are
// back where they were.

package msgtrace_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
	"reqreply/msgtrace"
)

func TestEndings(t *testing.T) {
	// long bounds a wait that only a bug would let run out.
	const long = 30 * time.Second
	cases := []struct {
		name string
		// run sends (or not) a traced request on nc and collects; it returns
		// Collect's tree and error.
		run     func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error)
		wantErr []error // one of these, or none
		closes  bool    // the run ends nc
		reports int     // reports in the tree
	}{
		{
			name: "answered",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				reply, err := nc.RequestMsg(tr.Msg(nats.NewMsg("svc.answer")), long)
				require.NoError(t, err)
				assert.Equal(t, "ok", string(reply.Data), "the reply is the responder's, not a report")
				return tr.Collect(context.Background(), long)
			},
			reports: 1,
		},
		{
			name: "no responders",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				_, err := nc.RequestMsg(tr.Msg(nats.NewMsg("svc.nobody")), long)
				require.ErrorIs(t, err, nats.ErrNoResponders)
				tree, err := tr.Collect(context.Background(), long)
				if err == nil {
					assert.Empty(t, tree.Root().Egresses(), "nobody to send it to")
				}
				return tree, err
			},
			reports: 1,
		},
		{
			name: "no report within quiet",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				return tr.Collect(context.Background(), 20*time.Millisecond)
			},
			wantErr: []error{nats.ErrTimeout},
		},
		{
			name: "context deadline",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				defer cancel()
				return tr.Collect(ctx, long)
			},
			wantErr: []error{context.DeadlineExceeded},
		},
		{
			name: "cancelled",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return tr.Collect(ctx, long)
			},
			wantErr: []error{context.Canceled},
		},
		{
			name: "closed during the wait",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				done := make(chan struct{})
				go func() { defer close(done); nc.Close() }()
				tree, err := tr.Collect(context.Background(), long)
				<-done
				return tree, err
			},
			wantErr: []error{nats.ErrConnectionClosed},
			closes:  true,
		},
		{
			name: "drained during the wait",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				require.NoError(t, nc.Drain())
				return tr.Collect(context.Background(), long)
			},
			// Draining, or closed once the drain is done.
			wantErr: []error{nats.ErrConnectionDraining, nats.ErrConnectionClosed},
			closes:  true,
		},
		{
			name: "collected twice",
			run: func(t *testing.T, nc *nats.Conn, tr *msgtrace.Trace) (*msgtrace.Tree, error) {
				tr.Stop()
				return tr.Collect(context.Background(), long)
			},
			wantErr: []error{nats.ErrBadSubscription},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.New(t)
			rc := connectTo(t, s, "responder")
			_, err := rc.Subscribe("svc.answer", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
			require.NoError(t, err)
			require.NoError(t, rc.Flush())
			nc := connectTo(t, s, "requester")
			// The first request makes nats.go's response mux, which stays.
			_, err = nc.Request("svc.answer", nil, long)
			require.NoError(t, err)
			before, err := testserver.FootprintOf(s, nc)
			require.NoError(t, err)

			tr, err := msgtrace.Start(nc)
			require.NoError(t, err)
			tree, err := tc.run(t, nc, tr)
			require.NotNil(t, tree, "a tree, also with an error")
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				assert.Len(t, tree.Reports, tc.reports)
				assert.True(t, tree.Complete())
			} else {
				assert.True(t, slices.ContainsFunc(tc.wantErr, func(w error) bool { return errors.Is(err, w) }), "error %v, want one of %v", err, tc.wantErr)
			}

			serverSubs := before.Server
			if tc.closes {
				serverSubs -= before.Client
			} else {
				assert.Equal(t, before.Client, nc.NumSubscriptions(), "the client's subscriptions")
			}
			after, err := testserver.SettleFootprint(s, nc, func(f testserver.Footprint) bool {
				return f.Server == serverSubs && f.Goroutines <= before.Goroutines
			})
			require.NoError(t, err)
			assert.Equal(t, serverSubs, after.Server, "the server's subscriptions")
			assert.LessOrEqual(t, after.Goroutines, before.Goroutines, "goroutines")
		})
	}
}

// Refused up front: no connection, a closed one; nothing is subscribed.
func TestStartRefused(t *testing.T) {
	s := testserver.New(t)
	closed := connectTo(t, s, "closed")
	closed.Close()
	cases := []struct {
		name string
		nc   *nats.Conn
		want error
	}{
		{name: "nil", nc: nil, want: nats.ErrInvalidConnection},
		{name: "closed", nc: closed, want: nats.ErrConnectionClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := msgtrace.Start(tc.nc)
			assert.ErrorIs(t, err, tc.want)
			assert.Nil(t, tr)
		})
	}
}
