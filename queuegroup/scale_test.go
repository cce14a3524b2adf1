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
