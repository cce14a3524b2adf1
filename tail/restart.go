// The rolling restart: every member drains and comes back, one at a time,
// while callers keep sending; plain requests fail in the gaps, retried
// requests (hedge.Backoff) do not.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/probe"
)

// RestartRounds is how many times the rolling restart goes through every
// member: 3.
const RestartRounds = 3

// RestartPace is how long each caller waits between requests in the rolling
// restart: 1 ms, a steady client rather than a tight loop, so a gap costs a
// countable number of requests.
const RestartPace = time.Millisecond

// RestartRow is one measured row of the rolling restart.
type RestartRow struct {
	Name    string
	Members int
	Load    *LoadResult
	Client  hedge.ClientStats
	// Waits is how many of the row's rejoins were not visible from the
	// requester's node at the first probes (probe.Probed.Delayed), and
	// Waited the time those waits took in all: on a cluster, interest
	// propagation, which the row's gaps include.
	Waits  int
	Waited time.Duration
}

// RestartTable is the rolling restart's rows.
type RestartTable struct {
	Gap  time.Duration
	Rows []*RestartRow
	// Nodes the members and the requester are spread over (env.Nodes).
	Nodes int
}

// restartBackoff is the retry of the rolling restart: waits from 1 ms
// doubling to 20 ms, full jitter, each attempt bounded by half the overall
// deadline so a request lost with a member is sent again in time.
func restartBackoff(cfg Config) *hedge.Backoff {
	return &hedge.Backoff{
		Base: time.Millisecond, Max: 20 * time.Millisecond, Attempt: cfg.Timeout / 2,
		Rand: hedge.SeededRand(cfg.Seed),
	}
}

// RollingRestart measures plain and retried requests while every member
// drains (Member.Stop) and comes back after cfg.Gap, one at a time,
// RestartRounds times: with one member, where every restart leaves the
// group empty, and with cfg.Members members, where the others cover the
// gap. Members are spread round-robin over the nodes; each row starts
// counting once every member answers a probe from nc's node (a wait line
// on w when there was a wait), and after each rejoin the next restart
// waits until the member that rejoined is visible from there (the rows
// count those waits). The error is a member's or the connection's, or one
// wrapping ctx.Err() when ctx ends before the last row is measured: an
// interrupted restart has no table, so no verdict is drawn from part of it.
func RollingRestart(ctx context.Context, env *cli.Env, nc *nats.Conn, cfg Config, progress, w io.Writer) (*RestartTable, error) {
	t := &RestartTable{Gap: cfg.Gap, Nodes: len(env.Nodes())}
	retry := restartBackoff(cfg)
	type setup struct {
		name    string
		members int
		policy  hedge.Policy
	}
	setups := []setup{
		{"plain requests", 1, hedge.Policy{}},
		{"retry with backoff and jitter", 1, hedge.Policy{Retry: retry}},
	}
	if cfg.Members > 1 {
		setups = append(setups,
			setup{"plain requests", cfg.Members, hedge.Policy{}},
			setup{"retry with backoff and jitter", cfg.Members, hedge.Policy{Retry: retry}})
	}
	for i, s := range setups {
		if progress != nil {
			fmt.Fprintf(progress, "\r\033[Ktail: rolling restart, row %d/%d (%s, %d members)", i+1, len(setups), s.name, s.members)
		}
		row, err := restartRow(ctx, env, nc, cfg, s.members, s.policy, w)
		if err != nil {
			return nil, err
		}
		row.Name = s.name
		t.Rows = append(t.Rows, row)
	}
	clearProgress(progress)
	return t, nil
}

// restartRow runs one row: members start (spread over the nodes), the
// requester waits until every one is visible from its node, callers send
// until the restarts are over, and every member is restarted in turn
// RestartRounds times.
func restartRow(ctx context.Context, env *cli.Env, nc *nats.Conn, cfg Config, n int, p hedge.Policy, w io.Writer) (*RestartRow, error) {
	members := make([]*Member, n)
	stop := func(m *Member) error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cli.DrainTimeout)
		defer cancel()
		return m.Stop(sctx)
	}
	stopAll := func() error { return StopAll(ctx, members) }
	for i := range members {
		m, err := startMember(env, memberName(i+1), MemberOptions{Node: memberNode(env, i+1)})
		if err != nil {
			return nil, errors.Join(err, stopAll())
		}
		members[i] = m
	}
	c, err := newClient(nc, p)
	if err != nil {
		return nil, errors.Join(err, stopAll())
	}
	defer c.Close()
	if _, err := awaitClient(ctx, c, waitLog(env, w), Subject, allOf(members), cfg.Timeout); err != nil {
		return nil, errors.Join(err, stopAll())
	}
	// After each rejoin: wait until the member is visible from the
	// requester's node before the next restart, so that on a cluster the
	// next gap is the one the row means, not one stretched by interest
	// still crossing a route.
	var waits int
	var waited time.Duration
	rejoined := func(m *Member) error {
		pr, err := awaitClient(ctx, c, nil, Subject, probe.AllOf(m.Name), cfg.Timeout)
		if pr.Delayed() {
			waits++
			waited += pr.Waited
		}
		return err
	}
	restarted := make(chan struct{})
	var restartErr error
	go func() {
		defer close(restarted)
		restartErr = restartAll(ctx, env, members, cfg.Gap, stop, rejoined)
	}()
	res, lerr := LoadWatched(ctx, c, Subject, LoadConfig{Concurrency: cfg.Concurrency, Timeout: cfg.Timeout, Until: restarted, Pace: RestartPace})
	<-restarted
	if restartErr != nil || lerr != nil {
		return nil, errors.Join(restartErr, lerr, stopAll())
	}
	// An interrupted row measured part of a restart: no row at all, so
	// that nobody reads a verdict into it.
	if err := ctx.Err(); err != nil {
		return nil, errors.Join(fmt.Errorf("rolling restart: %w", err), stopAll())
	}
	row := &RestartRow{Members: n, Load: res, Client: c.Stats(), Waits: waits, Waited: waited}
	if res.FirstError != nil {
		return nil, errors.Join(res.FirstError, stopAll())
	}
	return row, stopAll()
}

// restartAll drains and restarts each member in turn, RestartRounds times:
// Stop (which answers every request it had), away for gap, then a new
// member of the same name joins on the same node, and rejoined waits until
// it is visible to the requester. members is updated in place. When ctx
// ends first it returns ctx.Err(): the restart did not happen in full.
func restartAll(ctx context.Context, env *cli.Env, members []*Member, gap time.Duration, stop func(*Member) error, rejoined func(*Member) error) error {
	for range RestartRounds {
		for i, m := range members {
			// Let traffic flow a while before each restart.
			if err := hedge.Sleep(ctx, 2*gap); err != nil {
				return ctx.Err()
			}
			if err := stop(m); err != nil {
				return err
			}
			members[i] = nil
			if err := hedge.Sleep(ctx, gap); err != nil {
				return ctx.Err()
			}
			nm, err := startMember(env, m.Name, MemberOptions{Node: memberNode(env, i+1)})
			if err != nil {
				return err
			}
			members[i] = nm
			if err := rejoined(nm); err != nil {
				return err
			}
		}
	}
	if err := hedge.Sleep(ctx, 2*gap); err != nil {
		return ctx.Err()
	}
	return nil
}

// Write prints the table.
func (t *RestartTable) Write(w io.Writer) {
	fmt.Fprintf(w, "rolling restart: each member drains, is away %v, comes back; %d rounds; callers send every %v\n", t.Gap, RestartRounds, RestartPace)
	fmt.Fprintf(w, "%-31s %7s %8s %9s %14s %8s %8s %9s\n", "pattern", "members", "requests", "succeeded", "no responders", "timeout", "retries", "p99")
	for _, r := range t.Rows {
		fmt.Fprintf(w, "%-31s %7d %8d %9d %14d %8d %8d %9s\n", r.Name, r.Members, r.Load.Requests, r.Load.Answered,
			r.Load.NoResponders, r.Load.TimedOut, r.Client.Retries, ms(hedge.Percentile(r.Load.Latencies, 99)))
	}
	if t.Nodes > 1 {
		var waits int
		var waited time.Duration
		for _, r := range t.Rows {
			waits += r.Waits
			waited += r.Waited
		}
		rejoins := "rejoins"
		if waits == 1 {
			rejoins = "rejoin"
		}
		fmt.Fprintf(w, "on %d nodes: %d %s waited %s in all for their interest to reach the requester's node; a plain request routed to a node whose member had just left is lost there (NATS gives no guarantee for it): counted under timeout, and retries re-send it\n",
			t.Nodes, waits, rejoins, ms(waited))
	}
}

// Verdict says whether retries turned every failure of the plain requests
// into a success within the deadline: met only when the plain requests
// failed, and every row with retries sent requests and none failed.
func (t *RestartTable) Verdict() string {
	var plainFailed, retryFailed, retried int
	retryRows, emptyRows := 0, 0
	for _, r := range t.Rows {
		failed := r.Load.Requests - r.Load.Answered
		if r.Name == "plain requests" {
			plainFailed += failed
		} else {
			retryFailed += failed
			retried += int(r.Client.Retries)
			retryRows++
			if r.Load.Requests == 0 {
				emptyRows++
			}
		}
	}
	ok := "met"
	if retryFailed > 0 || plainFailed == 0 || retryRows == 0 || emptyRows > 0 {
		ok = "NOT met"
	}
	return fmt.Sprintf("plain requests failed %d times; with retries %d failed after %d retries: %s", plainFailed, retryFailed, retried, ok)
}
