package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"reqreply/hedge"
)

// This file turns a Result into what the program prints: the per-member
// bar chart with latency percentiles, the spread of the split, throughput,
// and the one line that says whether every request got exactly one reply.

// ErrNotVerified is wrapped by the error of a run in which some request was
// not answered exactly once (timed out, or answered twice) where the demo
// expects no loss: the program then exits 1.
var ErrNotVerified = errors.New("not every request was answered exactly once")

// barWidth is the width, in characters, of the longest bar.
const barWidth = 40

// countsOf returns the replies counted for each of names, in that order;
// with others, followed by any responder not in names (a member started
// elsewhere, as with -request), sorted by name. Members that sent nothing
// count 0: they are part of the split.
func countsOf(r *Result, names []string, others bool) (order []string, counts []int) {
	order = slices.Clone(names)
	if others {
		var more []string
		for _, m := range r.Members {
			if !slices.Contains(names, m.Name) {
				more = append(more, m.Name)
			}
		}
		slices.SortFunc(more, compareNames)
		order = append(order, more...)
	}
	for _, name := range order {
		n := 0
		if m := r.Member(name); m != nil {
			n = m.Count()
		}
		counts = append(counts, n)
	}
	return order, counts
}

// writeBars writes one line per member, in the order of countsOf(r, names,
// others): its name, a bar as long as its count relative to the busiest
// member's, its count and, with latency, the p50 and p99 of its replies.
func writeBars(w io.Writer, r *Result, names []string, others bool, indent string, latency bool) {
	order, counts := countsOf(r, names, others)
	width := 0
	for _, name := range order {
		width = max(width, len(name))
	}
	most := slices.Max(append([]int{1}, counts...))
	for i, name := range order {
		n := (counts[i]*barWidth + most/2) / most
		if counts[i] > 0 {
			n = max(n, 1)
		}
		// Padded by hand: fmt pads by bytes, and "█" is three.
		bar := strings.Repeat("█", n) + strings.Repeat(" ", barWidth-n)
		line := fmt.Sprintf("%s%-*s %s %4d", indent, width, name, bar, counts[i])
		if m := r.Member(name); latency && m != nil && m.Count() > 0 {
			line += fmt.Sprintf("   p50 %s  p99 %s", ms(hedge.Percentile(m.Latencies, 50)), ms(hedge.Percentile(m.Latencies, 99)))
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// writeSpread writes how even the split of counts is: max/min and the
// chi-square statistic against an even split, with its verdict at
// FairnessAlpha.
func writeSpread(w io.Writer, counts []int) {
	if len(counts) < 2 {
		fmt.Fprintln(w, "spread: one member took every request")
		return
	}
	hi, lo := MaxMin(counts)
	ratio := "∞"
	if lo > 0 {
		ratio = strconv.FormatFloat(float64(hi)/float64(lo), 'f', 2, 64)
	}
	stat, df := ChiSquareEven(counts)
	line := fmt.Sprintf("spread: max/min %s (%d/%d); chi-square %.2f with %s of freedom", ratio, hi, lo, stat, plural(df, "degree"))
	if crit, ok := ChiSquareCritical(df); ok {
		verdict := "consistent with an even random split"
		if stat > crit {
			verdict = "NOT an even random split"
		}
		line += fmt.Sprintf(": %s (rejected above %.2f, p < 1e-6)", verdict, crit)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	if total < 5*len(counts) {
		line += "; fewer than 5 requests per member, too few for the figure to mean much"
	}
	fmt.Fprintln(w, line)
}

// writeThroughput writes requests per second over the run.
func writeThroughput(w io.Writer, r *Result, inFlight int) {
	fmt.Fprintf(w, "throughput: %.0f requests/s (%d answered in %s, %d in flight)\n",
		r.Throughput(), r.Answered, ms(r.Elapsed), min(inFlight, r.Requests))
}

// verdict is the line that says whether every request was answered exactly
// once, and an error wrapping ErrNotVerified when it was not. It says
// "verified" only when r.Exact() holds: every request answered, by exactly
// repliesEach replies over all its attempts (retries included), none an
// error reply, and no duplicate or late reply.
func verdict(r *Result, repliesEach int) (string, error) {
	retried := ""
	if r.RetryAnswered > 0 {
		retried = fmt.Sprintf(", %d after a retry", r.RetryAnswered)
	}
	each := "answered exactly once"
	if repliesEach > 1 {
		each = fmt.Sprintf("answered exactly %d times, once per group", repliesEach)
	}
	if r.Strays > 0 {
		retried += fmt.Sprintf("; %d stray messages on the inbox ignored", r.Strays)
	}
	if r.Unsettled {
		retried += "; counting ended before every reply could come (a member busy or disconnected), later replies not counted"
	}
	if r.Exact() {
		return fmt.Sprintf("verified: %d requests, %d replies: every request %s (0 lost, 0 duplicated%s)",
			r.Requests, r.Replies, each, retried), nil
	}
	line := fmt.Sprintf("NOT verified: %d requests: %d answered%s, %d timed out, %d failed, %d duplicate and %d late replies",
		r.Requests, r.Answered, retried, r.TimedOut, r.Failed, r.Duplicates, r.Late)
	if r.Errors > 0 {
		line += fmt.Sprintf(", %d error replies", r.Errors)
	}
	if r.Repeated > 0 {
		line += fmt.Sprintf(", %d requests answered more than %s over their attempts", r.Repeated, plural(repliesEach, "time"))
	}
	if r.Unsettled && r.Retried > 0 {
		line += fmt.Sprintf("; %d retried requests whose first attempt may still be answered, so they may have run twice", r.Retried)
	}
	return line, fmt.Errorf("%d of %d requests timed out, %d failed, %d error replies, %d repeated, %d duplicate and %d late replies: %w",
		r.TimedOut, r.Requests, r.Failed, r.Errors, r.Repeated, r.Duplicates, r.Late, ErrNotVerified)
}

// loadError writes what a run that ended early had counted, when Load
// returned counts with its error, and returns err: a closed connection or a
// Ctrl-C still says how many requests were answered, timed out, failed or
// never sent. The line leaves err out: the program prints it once, on
// stderr (or, for a Ctrl-C or a connection lost for good, says so there).
func loadError(w io.Writer, r *Result, err error) error {
	if r != nil {
		fmt.Fprintf(w, "run ended early: %d of %d requests answered, %d timed out, %d failed, %d not sent; %d replies counted, %d duplicate, %d late\n",
			r.Answered, r.Requests, r.TimedOut, r.Failed, r.Unsent, r.Replies, r.Duplicates, r.Late)
	}
	return err
}

// ms formats d in milliseconds, with fewer decimals as it grows.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	}
}

// plural returns "1 request" or "n requests".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// compareNames orders member names with their numbers: "worker-2" before
// "worker-10" (shorter first, then alphabetically).
func compareNames(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
