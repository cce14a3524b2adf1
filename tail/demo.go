// The demo's output: the two fault-model tables, the picture, and the
// targets checked against the figures.

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"reqreply/hedge"
	"reqreply/internal/cli"
)

// Run is the tail program. With -serve it runs the members only, and with
// -request the requester only (serve.go); otherwise it runs cfg.Demo: the
// slow-member table, the transient-stall table, the rolling-restart table,
// or all three, writing them to w. progress, when not nil, receives a line
// now and then while rows are measured (the program passes stderr when it
// is a terminal). Figures are measured, never asserted: the targets section
// says which were met. The error is a connection's, a member's, or a
// request's other than a timeout or no responders.
func Run(ctx context.Context, env *cli.Env, cfg Config, w, progress io.Writer) error {
	switch {
	case cfg.Mode.Serve:
		return Serve(ctx, env, cfg, w)
	case cfg.Mode.Request:
		return Request(ctx, env, cfg, w)
	}
	nc, err := connectRequester(env)
	if err != nil {
		return err
	}
	if cfg.Demo == DemoCharge {
		return RunCharge(ctx, env, nc, cfg, w)
	}
	if cfg.Demo != DemoRestart {
		fmt.Fprintf(w, "%d members in queue group %q, %d requests per row, %d in flight, deadline %v per request\n",
			cfg.Members, Group, cfg.Requests, cfg.Concurrency, cfg.Timeout)
	}
	var tables []*Table
	for _, model := range []struct {
		demo  Demo
		fault string
		title string
	}{
		{DemoSlow, "slow", fmt.Sprintf("one member slow: %s takes %v longer per request", memberName(1), cfg.Slow)},
		{DemoStall, "stall", fmt.Sprintf("transient stalls: each member stalls %v on %.3g%% of its requests", cfg.Stall, 100*cfg.StallRate)},
	} {
		if cfg.Demo != DemoAll && cfg.Demo != model.demo {
			continue
		}
		t := &Table{Title: model.title, Fault: model.fault}
		for i, p := range patterns(cfg) {
			row, err := measure(ctx, env, nc, cfg, faults(cfg)[model.fault], p, progressLine(progress, model.fault, p.Name, i+1, len(patterns(cfg)), cfg.Requests), w, len(tables) == 0 && i == 0)
			if err != nil {
				return err
			}
			t.Rows = append(t.Rows, row)
		}
		clearProgress(progress)
		fmt.Fprintln(w)
		t.Write(w)
		writeAdmissionInTransit(w, env, t)
		tables = append(tables, t)
	}
	for _, t := range tables {
		best := t.Best()
		fmt.Fprintf(w, "\n%s: latency of every request, baseline against the lowest p99 (%s); bar length is logarithmic\n", t.Fault, best.Pattern.Name)
		DrawHistograms(w, "baseline", t.Rows[0].Load.Latencies, best.Pattern.Name, best.Load.Latencies, 24)
	}
	if cfg.Demo == DemoAll || cfg.Demo == DemoRestart {
		rt, err := RollingRestart(ctx, env, nc, cfg, progress, w)
		if err != nil {
			return err
		}
		if cfg.Demo != DemoRestart {
			fmt.Fprintln(w) // after the tables; -demo restart begins with its own
		}
		rt.Write(w)
		writeTargets(w, tables, rt)
		return nil
	}
	writeTargets(w, tables, nil)
	return nil
}

// writeAdmissionInTransit writes, when the Env has several nodes and an
// admission-control row of t timed out, what NATS does not guarantee
// there: a member's leave reaches the other nodes only after it crosses
// the route, and a request routed to its node in between is dropped there
// and waits out its deadline. Counted under timeout; only a retry on
// timeout (Backoff.Attempt, idempotent handlers only) recovers it.
func writeAdmissionInTransit(w io.Writer, env *cli.Env, t *Table) {
	if len(env.Nodes()) < 2 {
		return
	}
	var lost int
	for _, r := range t.Rows {
		if r.Pattern.Admit > 0 {
			lost += r.Load.TimedOut
		}
	}
	if lost == 0 {
		return
	}
	fmt.Fprintf(w, "in transit: %d requests of the admission rows timed out; on %d nodes these include requests routed to a member's node after it had left the group (its leave crosses the route asynchronously): NATS gives no guarantee for them; a retry on timeout re-sends them\n",
		lost, len(env.Nodes()))
}

// Table is one fault model's rows.
type Table struct {
	Title, Fault string
	Rows         []*Row
}

// Write prints the table: one row per pattern.
func (t *Table) Write(w io.Writer) {
	fmt.Fprintln(w, t.Title)
	slowCol := t.Fault == "slow"
	head := fmt.Sprintf("%-32s %9s %9s %9s %7s %7s", "pattern", "p50", "p99", "p99.9", "extra", "wasted")
	if slowCol {
		head += fmt.Sprintf(" %8s", "(slow)")
	}
	head += fmt.Sprintf(" %8s %7s %8s", "timeout", "churn", "verified")
	fmt.Fprintln(w, head)
	for _, r := range t.Rows {
		l := r.Load.Latencies
		line := fmt.Sprintf("%-32s %9s %9s %9s %6.1f%% %7d", r.Pattern.Name,
			ms(hedge.Percentile(l, 50)), ms(hedge.Percentile(l, 99)), ms(hedge.Percentile(l, 99.9)), r.Extra(), r.Wasted())
		if slowCol {
			line += fmt.Sprintf(" %8d", r.WastedBy(memberName(1)))
		}
		verified := "yes"
		if !r.Verified() {
			verified = "NO"
		}
		line += fmt.Sprintf(" %8d %7d %8s", r.Load.TimedOut+r.Load.NoResponders, r.Churn(), verified)
		fmt.Fprintln(w, line)
	}
}

// Best is the verified row with the lowest p99, then the fewest extra
// requests; the baseline when none beats it.
func (t *Table) Best() *Row {
	best := t.Rows[0]
	for _, r := range t.Rows[1:] {
		if !r.Verified() {
			continue
		}
		p, bp := hedge.Percentile(r.Load.Latencies, 99), hedge.Percentile(best.Load.Latencies, 99)
		if p < bp || p == bp && r.Extra() < best.Extra() {
			best = r
		}
	}
	return best
}

// row returns the table's row for pattern key, or nil.
func (t *Table) row(key string) *Row {
	for _, r := range t.Rows {
		if r.Pattern.Key == key {
			return r
		}
	}
	return nil
}

// fastP99 is the p99 of the replies the fast members (all but member-1)
// sent in row r; false when they sent none (-members 1), and there is
// nothing to compare with.
func fastP99(r *Row) (time.Duration, bool) {
	var all []time.Duration
	for name, l := range r.Load.ByMember {
		if name != memberName(1) {
			all = append(all, l...)
		}
	}
	if len(all) == 0 {
		return 0, false
	}
	slices.Sort(all)
	return hedge.Percentile(all, 99), true
}

// writeTargets checks the demo's targets against the measured rows and
// says, for each, met or not, with the figures.
func writeTargets(w io.Writer, tables []*Table, rt *RestartTable) {
	fmt.Fprintln(w, "\ntargets (measured on this run, on a machine shared with other work):")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, t := range tables {
		base := t.Rows[0]
		bp99 := hedge.Percentile(base.Load.Latencies, 99)
		switch t.Fault {
		case "stall":
			for _, key := range []string{"hedged", "adaptive"} {
				r := t.row(key)
				p99 := hedge.Percentile(r.Load.Latencies, 99)
				fmt.Fprintf(w, "  stalls, %s: p99 %s vs baseline %s (≤ 1/5: %s), extra %.1f%% (≤ 10%%: %s)\n",
					r.Pattern.Name, ms(p99), ms(bp99), verdict(p99 <= bp99/5), r.Extra(), verdict(r.Extra() <= 10))
			}
		case "slow":
			for _, key := range []string{"admission", "admission+adaptive"} {
				r := t.row(key)
				p99 := hedge.Percentile(r.Load.Latencies, 99)
				fp99, ok := fastP99(r)
				if !ok {
					fmt.Fprintf(w, "  slow member, %s: p99 %s, no fast member answered to compare with (n/a), churn %d subscription changes\n",
						r.Pattern.Name, ms(p99), r.Churn())
					continue
				}
				fmt.Fprintf(w, "  slow member, %s: p99 %s vs the fast members' p99 %s (≤ 2×: %s), churn %d subscription changes\n",
					r.Pattern.Name, ms(p99), ms(fp99), verdict(p99 <= 2*fp99), r.Churn())
			}
			d := t.row("deadline")
			fmt.Fprintf(w, "  slow member, deadline propagation: %s's wasted work %d vs baseline %d (it skipped %d expired requests and cut %d short)\n",
				memberName(1), d.WastedBy(memberName(1)), base.WastedBy(memberName(1)), d.Members[0].Skipped, d.Members[0].Cut)
			h := t.row("hedged")
			fmt.Fprintf(w, "  slow member, hedging alone: p99 %s vs baseline %s: a hedge lands on %s as often as the first copy did, and waits behind its queue\n",
				ms(hedge.Percentile(h.Load.Latencies, 99)), ms(bp99), memberName(1))
		}
		all := true
		for _, r := range t.Rows {
			all = all && r.Verified()
		}
		fmt.Fprintf(w, "  %s: every caller got at most one reply, its own, every reply accounted for: %s\n", t.Fault, verdict(all))
	}
	if rt != nil {
		fmt.Fprintf(w, "  rolling restart: %s\n", strings.TrimSpace(rt.Verdict()))
	}
}

// progressLine returns a Load progress callback that rewrites one status
// line on w, or nil when w is nil. It writes at most every 500 requests.
func progressLine(w io.Writer, model, pattern string, i, n, requests int) func(int) {
	if w == nil {
		return nil
	}
	return func(done int) {
		if done%500 == 0 || done == requests {
			fmt.Fprintf(w, "\r\033[Ktail: %s, row %d/%d (%s): %d/%d requests", model, i, n, pattern, done, requests)
		}
	}
}

// clearProgress erases the status line.
func clearProgress(w io.Writer) {
	if w != nil {
		fmt.Fprint(w, "\r\033[K")
	}
}
