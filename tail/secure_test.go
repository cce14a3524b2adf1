package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// program runs the tail command line through cli.Exec as main does, with
// the environment vars and the -secure setup lock, and returns the exit
// code, stdout and stderr.
func program(args []string, vars map[string]string, lock cli.Lockdown) (int, string, string) {
	cfg := DefaultConfig()
	fs, check := flags(&cfg)
	var stdout, stderr clitest.Buffer
	code := cli.Exec(fs, args, check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, &stdout, nil)
	}, func(k string) string { return vars[k] }, &stderr, cli.Secure(lock))
	return code, stdout.String(), stderr.String()
}

// tableRow matches a row of a fault-model table: the pattern, then p50,
// p99, p99.9, extra, wasted, [wasted by the slow member], timeout, churn,
// verified.
var tableRow = regexp.MustCompile(`(?m)^(baseline|hedged.*?|deadline propagation|admission.*?|adaptive \+ deadline)\s{2,}\S+\s+\S+\s+\S+\s+\S+%\s+\d+\s+(?:\d+\s+)?(\d+)\s+\d+\s+(yes|NO)$`)

// restartRow matches a row of the rolling-restart table: the pattern, the
// members, requests, succeeded, no responders, timeout.
var restartRowRe = regexp.MustCompile(`(?m)^(plain requests|retry with backoff and jitter)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s`)

// TestProgram runs the tail program through its real command line on one
// server, on an embedded cluster of 3 nodes and locked down (-secure).
// Every row of every table must be verified (each caller got at most one
// reply, its own, and every reply is accounted for). With a 2 s deadline
// per request nothing may time out or get no responders in the fault-model
// tables: a spurious no responders (a request sent before the members'
// interest reached the requester's node) would show there. The one
// exception NATS makes is counted, not failed: on a cluster an admission
// row may lose a request routed to a member's node after it left the group
// (its leave crosses the route asynchronously); the program says so. In
// the rolling
// restart, the rows with 3 members never get no responders (the others
// cover each gap), and retries leave no failure. Latencies are not
// asserted.
func TestProgram(t *testing.T) {
	tests := []struct {
		name string
		args string
		// stderr lines that may appear besides the connection lines
		nodes   []string // node names each connection line may name
		secure  bool
		restart bool
	}{
		{name: "one server", args: "-demo stall -requests 150 -timeout 2s"},
		{name: "cluster of 3", args: "-cluster 3 -demo stall -requests 150 -timeout 2s", nodes: []string{"node-1", "node-2", "node-3"}},
		{name: "cluster of 3, slow member", args: "-cluster 3 -demo slow -requests 100 -slow 1ms -timeout 2s", nodes: []string{"node-1", "node-2", "node-3"}},
		{name: "cluster of 3, rolling restart", args: "-cluster 3 -demo restart -timeout 2s", nodes: []string{"node-1", "node-2", "node-3"}, restart: true},
		{name: "secure", args: "-secure -demo stall -requests 150 -timeout 2s", secure: true},
		{name: "secure, rolling restart", args: "-secure -demo restart -timeout 2s", secure: true, restart: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), nil, Lockdown)
			require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			assert.False(t, strings.HasPrefix(stdout, "\n"), "stdout begins with a blank line:\n%s", stdout)
			assert.NotContains(t, stderr, "no responders")
			assert.NotContains(t, stderr, "ermissions violation")
			// stderr: the server line, and on a cluster one line per
			// connection naming its node.
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				switch {
				case strings.HasPrefix(line, "tail: NATS_URL is unset") || strings.HasPrefix(line, "tail: -secure: an embedded nats-server"):
				case len(tc.nodes) > 0 && regexp.MustCompile(`^tail (requester|member-\d): connected to (node-\d) at nats://`).MatchString(line):
					node := regexp.MustCompile(`connected to (node-\d)`).FindStringSubmatch(line)[1]
					assert.Contains(t, tc.nodes, node)
				default:
					t.Errorf("unexpected stderr line %q", line)
				}
			}
			if len(tc.nodes) > 0 {
				assert.Contains(t, stderr, "tail requester: connected to node-2 at", "the requester sits on another node than member-1's")
				assert.Contains(t, stderr, "tail member-1: connected to node-1 at")
				assert.Contains(t, stderr, "tail member-3: connected to node-3 at")
			}
			if tc.restart {
				rows := restartRowRe.FindAllStringSubmatch(stdout, -1)
				require.Len(t, rows, 4, stdout)
				for _, r := range rows {
					members, requests, succeeded, noResponders := atoi(t, r[2]), atoi(t, r[3]), atoi(t, r[4]), atoi(t, r[5])
					assert.Positive(t, requests, r[0])
					if r[1] == "retry with backoff and jitter" {
						assert.Equal(t, requests, succeeded, "retries leave no failure: %s", r[0])
					}
					if members == 3 {
						assert.Zero(t, noResponders, "the other members cover each gap: %s", r[0])
					}
				}
				assert.Contains(t, stdout, "with retries 0 failed after")
				if len(tc.nodes) > 0 {
					assert.Contains(t, stdout, "on 3 nodes: ")
				}
				return
			}
			if len(tc.nodes) > 0 {
				assert.Contains(t, stdout, "nodes: member-1 on node-1, member-2 on node-2, member-3 on node-3; requester on node-2\n")
			}
			rows := tableRow.FindAllStringSubmatch(stdout, -1)
			require.Len(t, rows, len(patterns(DefaultConfig())), stdout)
			for _, r := range rows {
				assert.Equal(t, "yes", r[3], "verified: %s", r[0])
				if len(tc.nodes) > 0 && strings.HasPrefix(r[1], "admission") {
					continue
				}
				assert.Equal(t, "0", r[2], "nothing timed out or got no responders: %s", r[0])
			}
			if strings.Contains(stdout, "in transit: ") {
				assert.NotEmpty(t, tc.nodes, "only on a cluster")
			}
			assert.Contains(t, stdout, "every caller got at most one reply, its own, every reply accounted for: met")
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// TestDenied checks that every permission denial tail can meet ends at
// once, with an error wrapping nats.ErrPermissionViolation that names the
// subject, and is not also printed: a member whose user may not subscribe
// to tail.work, a requester whose inbox is outside its prefix, and a
// requester that may not publish to tail.work, plain, hedged (the first
// copy and the hedge both denied) and under a load of 16 in flight. The
// request contexts allow a minute: a denial that waited for its deadline
// would show as nats.ErrTimeout.
func TestDenied(t *testing.T) {
	// The service is another subject: tail.work is denied to both users.
	env, err := cli.EmbeddedSecure("tail", cli.Lockdown{Service: []string{"other.work"}})
	require.NoError(t, err)
	var stderr clitest.Buffer
	env.Stderr = &stderr
	t.Cleanup(func() { require.NoError(t, env.Close()) })

	t.Run("member subscribe", func(t *testing.T) {
		_, err := startMember(env, "member-1", MemberOptions{})
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.Contains(t, err.Error(), `Subscription to "tail.work" using queue "workers"`)
	})
	t.Run("requester inbox", func(t *testing.T) {
		nc, err := env.ConnectAs(cli.Requester, "requester", nats.CustomInboxPrefix("_INBOX_elsewhere"))
		require.NoError(t, err)
		_, err = newClient(nc, hedge.Policy{})
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.Contains(t, err.Error(), `Subscription to "_INBOX_elsewhere.`)
		assert.Contains(t, err.Error(), "connect with an inbox prefix this user may subscribe to")
	})

	nc, err := env.ConnectAs(cli.Requester, "requester")
	require.NoError(t, err)
	// barrier returns once the connection's error handler has handled every
	// violation the server sent before it: nats.go hands them to the
	// handler in order, and this one's is the last.
	barrier := func(t *testing.T, subject string) {
		t.Helper()
		got := make(chan struct{})
		stop := denials.Watch(nc, func(error) { close(got) }, []string{subject}, nil)
		defer stop()
		require.NoError(t, nc.Publish(subject, nil))
		select {
		case <-got:
		case <-time.After(time.Minute):
			t.Fatal("the barrier's violation never came")
		}
	}
	tests := []struct {
		name   string
		policy hedge.Policy
		hedged bool // the hedge is due at once
		load   bool
	}{
		{name: "plain", policy: hedge.Policy{}},
		{name: "hedged, both copies denied", policy: hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}}, hedged: true},
		{name: "retry", policy: hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}}},
		{name: "load, 16 in flight", policy: hedge.Policy{Hedge: hedge.Hedge{Delay: time.Millisecond}}, load: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []hedge.Option
			if tc.hedged {
				// The hedge is due as soon as the first copy is out.
				fired := make(chan time.Time, 1)
				fired <- time.Now()
				opts = append(opts, hedge.WithHedgeTimer(func(time.Duration) <-chan time.Time { return fired }))
			}
			c, err := newClient(nc, tc.policy, opts...)
			require.NoError(t, err)
			defer func() { require.NoError(t, c.Close()) }()
			if tc.load {
				res, err := LoadWatched(longCtx(t), c, Subject, LoadConfig{Requests: 1000, Concurrency: 16, Timeout: time.Minute})
				require.NoError(t, err)
				require.ErrorIs(t, res.FirstError, nats.ErrPermissionViolation)
				assert.Contains(t, res.FirstError.Error(), `Publish to "tail.work"`)
				assert.Less(t, res.Requests, 1000, "the load stops at the first denial")
				assert.Zero(t, res.Answered+res.TimedOut+res.NoResponders)
			} else {
				for range 2 { // the second finds the subject denied already
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					_, err = c.Request(ctx, Subject, []byte("1"))
					cancel()
					require.ErrorIs(t, err, nats.ErrPermissionViolation)
					assert.NotErrorIs(t, err, nats.ErrTimeout)
					assert.Contains(t, err.Error(), `Publish to "tail.work"`)
				}
				if tc.hedged {
					assert.LessOrEqual(t, c.Stats().Hedges, int64(1))
				}
				_, err = awaitClient(longCtx(t), c, nil, Subject, probe.AnyResponder(), time.Minute)
				require.ErrorIs(t, err, nats.ErrPermissionViolation, "the probes find it denied too")
			}
			barrier(t, "barrier."+strconv.Itoa(i))
			assert.Empty(t, stderr.String(), "each denial is the caller's error, never also a printed line")
		})
	}
	t.Run("probes", func(t *testing.T) {
		c, err := newClient(nc, hedge.Policy{})
		require.NoError(t, err)
		defer func() { require.NoError(t, c.Close()) }()
		_, err = awaitClient(longCtx(t), c, nil, "other.work", probe.AnyResponder(), time.Minute)
		require.ErrorIs(t, err, nats.ErrNoResponders, "allowed, and nobody serves it")
		_, err = awaitClient(longCtx(t), c, nil, "tail.denied", probe.AnyResponder(), time.Minute)
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.Contains(t, err.Error(), `Publish to "tail.denied"`)
		barrier(t, "barrier.probes")
		assert.Empty(t, stderr.String())
	})
}

// TestDeniedProgram runs the program's halves against a server whose
// users may not do tail's part (their service is another subject): each
// exits 1 with one line naming the denied subject, with no secret in it.
func TestDeniedProgram(t *testing.T) {
	users, ids := cli.Lockdown{Service: []string{"other.work"}}.Users()
	s := testserver.New(t, testserver.WithUsers(users...))
	as := func(part cli.Part) map[string]string {
		id := ids[part]
		return map[string]string{"NATS_URL": s.ClientURL(), "NATS_USER": id.User, "NATS_PASSWORD": id.Password, "NATS_INBOX_PREFIX": id.InboxPrefix}
	}
	tests := []struct {
		name   string
		part   cli.Part
		args   string
		denied string
	}{
		{name: "requester publishing to tail.work", part: cli.Requester, args: "-request -requests 10", denied: `Publish to "tail.work"`},
		{name: "responder serving tail.work", part: cli.Responder, args: "-serve", denied: `Subscription to "tail.work" using queue "workers"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), as(tc.part), Lockdown)
			assert.Equal(t, cli.ExitFailure, code)
			assert.Empty(t, stdout)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			assert.Contains(t, stderr, "ermissions violation")
			assert.Contains(t, stderr, tc.denied)
			for _, id := range ids {
				assert.NotContains(t, stderr, id.Password)
			}
		})
	}
}

// TestLockedDownConfig loads security/locked-down.conf, the file the README
// documents, exactly as nats-server -c would, and runs tail's halves
// against it, each as its user, with credentials from the environment.
func TestLockedDownConfig(t *testing.T) {
	passwords, as := clitest.LockedDown(t, "../security/locked-down.conf")

	// The members, as the program's -serve runs them, as the responder.
	creds, err := cli.LoadCredentials("", func(k string) string { return as("responder", "")[k] })
	require.NoError(t, err)
	env := cli.FromCredentials("tail", creds)
	var serveErr clitest.Buffer
	env.Stderr = &serveErr
	ctx, cancel := context.WithCancel(context.Background())
	out := clitest.NewFirstWrite()
	done := make(chan error, 1)
	cfg := DefaultConfig()
	cfg.Mode.Serve = true
	go func() { done <- Run(ctx, env, cfg, out, nil) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, env.Close())
		assert.Empty(t, serveErr.String(), "the members were never denied anything")
	})
	select {
	case <-out.Ready: // serving
	case err := <-done:
		t.Fatalf("-serve ended: %v", err)
	}

	tests := []struct {
		name   string
		vars   map[string]string
		args   string
		want   string // in stdout
		denied string // else: the subject of the one-line denial
	}{
		{name: "requester with its prefix", vars: as("requester", cli.InboxPrefix), args: "-request -requests 200 -timeout 10s", want: "baseline: 200 requests"},
		{name: "requester, hedged", vars: as("requester", cli.InboxPrefix), args: "-request -requests 200 -timeout 10s -pattern adaptive", want: "hedged, adaptive p95: 200 requests"},
		{name: "another requester with its own prefix", vars: as("other", "_INBOX_other"), args: "-request -requests 20 -timeout 10s", want: "baseline: 20 requests"},
		{name: "another requester reading the requester's inboxes", vars: as("other", cli.InboxPrefix), args: "-request", denied: `Subscription to "` + cli.InboxPrefix + "."},
		{name: "requester without its prefix", vars: as("requester", ""), args: "-request", denied: `Subscription to "_INBOX.`},
		{name: "responder sending requests", vars: as("responder", ""), args: "-request", denied: `Subscription to "_INBOX.`},
		{name: "requester serving", vars: as("requester", cli.InboxPrefix), args: "-serve", denied: `Subscription to "tail.work"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), tc.vars, Lockdown)
			for _, pw := range passwords {
				assert.NotContains(t, stderr, pw)
			}
			if tc.denied == "" {
				assert.Equal(t, cli.ExitOK, code, stderr)
				assert.Contains(t, stdout, tc.want)
				assert.Contains(t, stdout, "timed out 0, no responders 0, wrong replies 0")
				assert.Empty(t, stderr)
				return
			}
			assert.Equal(t, cli.ExitFailure, code)
			assert.Empty(t, stdout)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			assert.Contains(t, stderr, "ermissions violation")
			assert.Contains(t, stderr, tc.denied)
		})
	}
}

// TestProbesNotCounted checks that readiness probes are answered by the
// members and counted nowhere: not received, executed or in progress by a
// member (so admission control never sees them), and not a stray, a
// dropped reply or a sent copy on the client, whose inbox they never use.
func TestProbesNotCounted(t *testing.T) {
	_, env := newServerEnv(t)
	var members []*Member
	for i := 1; i <= 3; i++ {
		m, err := startMember(env, memberName(i), MemberOptions{Admit: 1, Propagate: true})
		require.NoError(t, err)
		members = append(members, m)
		defer stop(t, m)
	}
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	c, err := newClient(nc, hedge.Policy{})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	for range 5 {
		p, err := awaitClient(longCtx(t), c, nil, Subject, allOf(members), time.Minute)
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"member-1", "member-2", "member-3"}, p.Seen)
	}
	require.NoError(t, c.Settle(longCtx(t)))
	for _, m := range members {
		require.NoError(t, m.Settle(longCtx(t)))
		st := m.Stats()
		assert.Zero(t, st.Received+st.Executed+st.Skipped+st.Leaves, "%s counted a probe: %+v", m.Name, st)
		assert.Equal(t, int64(1), st.Joins, "%s: admission control saw a probe", m.Name)
	}
	assert.Equal(t, hedge.ClientStats{}, c.Stats())
}
