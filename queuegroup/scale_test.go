package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDrainUnderLoad drains one member of three while requests are in
// flight, by its connection or by its subscription, and checks that no
// request is lost or fails: everything the member took, it answered, and it
// took nothing once drained; the others took the rest.
func TestDrainUnderLoad(t *testing.T) {
	tests := []struct {
		how         drainHow
		concurrency int
	}{
		{drainConnection, 16},
		{drainConnection, 64},
		{drainSubscription, 16},
		{drainSubscription, 64},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/concurrency=%d", tc.how, tc.concurrency), func(t *testing.T) {
			env := newEnv(t)
			members, err := startWorkers(env, DefaultConfig(), 1, 3, nil)
			require.NoError(t, err)
			victim := members[0]
			nc, err := env.Connect("requester")
			require.NoError(t, err)

			const requests = 900
			drained := make(chan int64, 1) // what the victim had taken when the drain finished
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: requests, Concurrency: tc.concurrency, Timeout: 5 * time.Second,
				At: changeAt(requests),
				Before: func(context.Context) error {
					go func() {
						var err error
						if tc.how == drainSubscription {
							err = victim.Leave(context.Background())
						} else {
							err = victim.Drain(context.Background())
						}
						assert.NoError(t, err)
						drained <- victim.Received()
					}()
					return nil
				},
				Settle: settleAll(members...),
			})
			require.NoError(t, err)
			took := <-drained

			assert.True(t, res.Exact(), "lost or duplicated: %+v", res)
			assert.Equal(t, took, victim.Received(), "the drained member took a request after its drain")
			assert.Equal(t, victim.Received(), victim.Answered(), "the drained member left a request unanswered")
			assert.EqualValues(t, victim.Answered(), countOf(res, victim.Name))
			assert.Less(t, countOf(res, victim.Name), requests)
			assert.Equal(t, requests, countOf(res, members[1].Name)+countOf(res, members[2].Name)+countOf(res, victim.Name))
		})
	}
}

// TestScaleUp adds a member a third of the way into a run: it takes work
// from then on. The requests after it joined (600) each go to it with
// probability 1/4, so it gets none with probability (3/4)^600 < 1e-74.
func TestScaleUp(t *testing.T) {
	for _, concurrency := range []int{1, 16} {
		t.Run(fmt.Sprintf("concurrency=%d", concurrency), func(t *testing.T) {
			env := newEnv(t)
			members, err := startWorkers(env, DefaultConfig(), 1, 3, nil)
			require.NoError(t, err)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			const requests = 900
			var newcomer *Member
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: requests, Concurrency: concurrency, Timeout: 5 * time.Second,
				At: changeAt(requests),
				Before: func(context.Context) error {
					added, err := startWorkers(env, DefaultConfig(), 4, 1, nil)
					if err == nil {
						newcomer = added[0]
					}
					return err
				},
				Settle: func(ctx context.Context) error { return settleAll(append(members, newcomer)...)(ctx) },
			})
			require.NoError(t, err)
			assert.True(t, res.Exact(), "%+v", res)
			assert.Positive(t, countOf(res, newcomer.Name), "the new member got no work")
			assert.EqualValues(t, newcomer.Answered(), countOf(res, newcomer.Name))
		})
	}
}

// Under load with a tiny timeout (-demo drain -requests 30000 -concurrency
// 5000 -timeout 20ms) the demo said "the others took the remaining 0",
// though they had taken 27,565 requests and answered them late.
func TestDrainedLine(t *testing.T) {
	tests := []struct {
		name           string
		took, answered int64
		got            int
		res            Result
		want           string
	}{
		{name: "all in time", took: 327, answered: 327, got: 327, res: Result{Answered: 3000},
			want: "worker-1 took 327 requests before it left and answered all of them; the others took the remaining 2673"},
		{name: "timeouts", took: 2435, answered: 2435, got: 0, res: Result{TimedOut: 30000},
			want: "worker-1 took 2435 requests before it left and answered all of them; the others answered 0 in time, and 30000 requests timed out"},
		{name: "not all answered", took: 5, answered: 4, got: 4, res: Result{Answered: 299, TimedOut: 1},
			want: "worker-1 took 5 requests before it left but answered only 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, drainedLine("worker-1", tc.took, tc.answered, tc.got, &tc.res))
		})
	}
}
