package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMixedListeners puts a queue group of 3, a second queue group of 2 and
// 2 plain listeners on one subject: each listener receives every request,
// and each request is answered by exactly one member of each group, so a
// requester gathering two replies gets one from each.
func TestMixedListeners(t *testing.T) {
	for _, concurrency := range []int{1, 16} {
		t.Run(fmt.Sprintf("concurrency=%d", concurrency), func(t *testing.T) {
			env := newEnv(t)
			workers, err := startWorkers(env, DefaultConfig(), 1, 3, nil)
			require.NoError(t, err)
			var auditors, listeners []*Member
			for i := 1; i <= 2; i++ {
				a, err := Join(env, Subject, AuditGroup, fmt.Sprintf("auditor-%d", i), MemberOptions{})
				require.NoError(t, err)
				auditors = append(auditors, a)
				l, err := Join(env, Subject, "", fmt.Sprintf("listener-%d", i), MemberOptions{Silent: true})
				require.NoError(t, err)
				listeners = append(listeners, l)
			}
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			const requests = 200
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: requests, Concurrency: concurrency, Timeout: 5 * time.Second,
				Replies: 2, Settle: settleAll(slices.Concat(workers, auditors, listeners)...),
			})
			require.NoError(t, err)
			require.True(t, res.Exact(), "%+v", res)

			for _, l := range listeners {
				assert.EqualValues(t, requests, l.Received(), "%s missed requests", l.Name)
			}
			group := map[string]string{}
			for _, m := range slices.Concat(workers, auditors) {
				group[m.Name] = m.Group
			}
			for i, who := range res.PerRequest {
				require.Len(t, who, 2, "request %d", i+1)
				got := []string{group[who[0]], group[who[1]]}
				slices.Sort(got)
				assert.Equal(t, []string{AuditGroup, Group}, got, "request %d answered by %v", i+1, who)
			}
			_, w := countsOf(res, names(workers), false)
			_, a := countsOf(res, names(auditors), false)
			assert.Equal(t, requests, w[0]+w[1]+w[2])
			assert.Equal(t, requests, a[0]+a[1])
		})
	}
}
