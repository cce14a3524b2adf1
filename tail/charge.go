// -demo charge: a write made safe to hedge and retry. A "charge" endpoint
// served by a queue group, loaded with hedges and retries after timeouts
// while one member dies holding requests, measured without an idempotency
// key, with one kept in each member's memory, and with one in a JetStream
// key-value bucket (package idempotent), each checked against the
// handler's own ledger of what it charged.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reqreply/hedge"
	"reqreply/idempotent"
	"reqreply/internal/cli"
	"reqreply/probe"
	"reqreply/respond"
)

// The charge demo's subject, queue group and bucket.
const (
	ChargeSubject = "tail.charge"
	ChargeGroup   = "charge"
	ChargeBucket  = "tail_charges"
	// ChargeHeld is how many requests the dying member holds when it dies.
	ChargeHeld = 4
	// ChargeSlowRate of charges take ChargeSlow instead of about 0.5 ms: a
	// card network that answers late, which draws hedges and retries.
	ChargeSlowRate = 0.05
	ChargeSlow     = 30 * time.Millisecond
)

// chargeLedger is the handler's own record: how many times it charged each
// request (by the number in its payload), whatever key it carried.
type chargeLedger struct {
	mu    sync.Mutex
	times map[int]int
}

func (l *chargeLedger) charge(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.times[n]++
}

// ChargeRow is one way of serving the charge, measured.
type ChargeRow struct {
	Name string
	// Latencies of the answered requests, ascending; Elapsed is the whole
	// load's time.
	Latencies []time.Duration
	Elapsed   time.Duration
	// Answered requests got a charge reply; Unknown an error reply from the
	// middleware (409: a copy waited for a member that died holding the
	// claim; 503: the bucket unreachable), so their caller knows the
	// outcome is unknown; TimedOut and Failed the rest.
	Answered, Unknown, TimedOut, Failed int
	// Once, Twice (twice or more) and Never: the requests by how many times
	// the ledger charged them; Extra the charges beyond one.
	Once, Twice, Never, Extra int
	// AnsweredNotOnce: answered requests the ledger did not charge exactly once.
	AnsweredNotOnce int
	// Sent copies, of which Hedges and Retries.
	Sent, Hedges, Retries int64

	answered map[int]bool // the requests answered, by number
}

// Verified reports whether no request was charged twice and every
// answered request was charged exactly once.
func (r *ChargeRow) Verified() bool { return r.Twice == 0 && r.AnsweredNotOnce == 0 }

// chargeMember is one member of the charge queue group.
type chargeMember struct {
	nc  *nats.Conn
	sub *nats.Subscription
	wg  sync.WaitGroup
	// die closes the connection and lets the requests member 1 holds go
	// through; once, whether it held ChargeHeld or the row ended first.
	die func()
}

// RunCharge runs -demo charge and writes its table to w: three rows (no
// key; a key in each member's memory; a key in a key-value bucket, with
// Replicas min(3, nodes)), the same load each. The error is a
// connection's, the bucket's (the server must run JetStream: the embedded
// one does), or a member's.
func RunCharge(ctx context.Context, env *cli.Env, nc *nats.Conn, cfg Config, w io.Writer) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	replicas := min(3, len(env.Nodes()))
	retry := &hedge.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempt: cfg.Timeout / 4, Rand: hedge.SeededRand(cfg.Seed)}
	policy := hedge.Policy{Hedge: hedge.Hedge{Delay: cfg.Hedge}, Retry: retry}
	fmt.Fprintf(w, "charge: %d members in queue group %q, %d requests, %d in flight, deadline %v; hedge after %v, retry after %v without a reply; %.0f%% of charges take %v; %s dies holding %d requests\n\n",
		cfg.Members, ChargeGroup, cfg.Requests, cfg.Concurrency, cfg.Timeout, cfg.Hedge, retry.Attempt, 100*ChargeSlowRate, ChargeSlow, memberName(1), ChargeHeld)
	var rows []*ChargeRow
	for _, store := range []string{"none", "memory", "kv"} {
		var kv jetstream.KeyValue
		if store == "kv" {
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ChargeBucket, TTL: time.Minute, Replicas: replicas})
			if err != nil {
				return fmt.Errorf("charge: bucket %s (the server needs JetStream): %w", ChargeBucket, err)
			}
		}
		row, err := chargeRow(ctx, env, nc, cfg, policy, store)
		if kv != nil {
			err = errors.Join(err, js.DeleteKeyValue(context.WithoutCancel(ctx), ChargeBucket))
		}
		if err != nil {
			return err
		}
		row.Name = map[string]string{"none": "no key", "memory": "key, each member's memory", "kv": fmt.Sprintf("key, KV bucket R%d", replicas)}[store]
		rows = append(rows, row)
	}
	writeCharge(w, rows)
	return nil
}

// chargeRow starts the members serving through store ("none", "memory" or
// "kv", the bucket ChargeBucket), runs the load, and reads the ledger.
func chargeRow(ctx context.Context, env *cli.Env, nc *nats.Conn, cfg Config, p hedge.Policy, store string) (*ChargeRow, error) {
	ledger := &chargeLedger{times: map[int]int{}}
	var members []*chargeMember
	defer func() {
		for _, m := range members {
			m.die()
			m.wg.Wait()
		}
	}()
	for i := 1; i <= cfg.Members; i++ {
		m, err := startChargeMember(ctx, env, cfg, i, store, ledger)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	var names []string
	for i := 1; i <= cfg.Members; i++ {
		names = append(names, memberName(i))
	}
	if _, err := awaitMembers(ctx, waitLog(env, nil), nc, ChargeSubject, probe.AllOf(names...), cfg.Timeout); err != nil {
		return nil, err
	}
	c, err := newClient(nc, p)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	row := chargeLoad(ctx, c, cfg)
	_ = c.Settle(ctx)
	st := c.Stats()
	row.Sent, row.Hedges, row.Retries = st.Sent, st.Hedges, st.Retries
	for _, m := range members {
		m.die()     // member 1 may hold fewer than ChargeHeld when the load ends
		m.wg.Wait() // the dead member's held charges land in the ledger
	}
	members = nil
	for n := 1; n <= cfg.Requests; n++ {
		switch t := ledger.times[n]; {
		case t == 0:
			row.Never++
		case t == 1:
			row.Once++
		default:
			row.Twice++
			row.Extra += t - 1
		}
		if row.answered[n] && ledger.times[n] != 1 {
			row.AnsweredNotOnce++
		}
	}
	return row, nil
}

// startChargeMember connects member i on its node and subscribes it to the
// charge queue group, each request worked on in a goroutine of its own.
// Its handler charges the ledger once per run, after about 0.5 ms
// (ChargeSlow on ChargeSlowRate of them). Member 1 dies: after its first
// requests it holds those it takes, and once it holds ChargeHeld (or the
// row's load ends first, holding fewer: a small -requests) its connection
// closes; the held charges then go through (the card is charged) and their
// replies are lost.
func startChargeMember(ctx context.Context, env *cli.Env, cfg Config, i int, store string, ledger *chargeLedger) (*chargeMember, error) {
	name := memberName(i)
	nc, err := env.ConnectNodeAs(cli.Responder, name, memberNode(env, i))
	if err != nil {
		return nil, err
	}
	m := &chargeMember{nc: nc}
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
	var rmu sync.Mutex
	slow := func() bool {
		rmu.Lock()
		defer rmu.Unlock()
		return rng.Float64() < ChargeSlowRate
	}
	var taken, held atomic.Int64
	release := make(chan struct{})
	m.die = sync.OnceFunc(func() {
		nc.Close()
		close(release)
	})
	dieAfter := int64(max(cfg.Requests/(2*cfg.Members), 1))
	charge := func(msg *nats.Msg) *nats.Msg {
		if i == 1 && taken.Add(1) > dieAfter {
			if held.Add(1) == ChargeHeld {
				m.die() // dies, holding ChargeHeld requests
			}
			<-release
		}
		d := 500 * time.Microsecond
		if slow() {
			d = ChargeSlow
		}
		time.Sleep(d) // the card network
		n, _ := strconv.Atoi(string(msg.Data))
		ledger.charge(n)
		return &nats.Msg{Data: fmt.Appendf(nil, "%d %s", n, name)}
	}
	handler := func(msg *nats.Msg) { _ = msg.RespondMsg(charge(msg)) }
	switch store {
	case "memory":
		handler = idempotent.New(idempotent.NewMemory(0, 0), charge, idempotent.Options{Wait: cfg.Timeout}).ServeMsg
	case "kv":
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		kv, err := js.KeyValue(ctx, ChargeBucket)
		if err != nil {
			return nil, err
		}
		handler = idempotent.New(idempotent.NewKV(kv), charge, idempotent.Options{Wait: cfg.Timeout}).ServeMsg
	}
	m.sub, err = nc.QueueSubscribe(ChargeSubject, ChargeGroup, probe.Handler(name, func(msg *nats.Msg) {
		m.wg.Go(func() { handler(msg) })
	}))
	if err != nil {
		return nil, err
	}
	return m, nc.Flush()
}

// chargeLoad sends cfg.Requests charges through c, cfg.Concurrency at a
// time, each with its own idempotency key on every copy (RequestMsg), and
// counts the outcomes.
func chargeLoad(ctx context.Context, c *hedge.Client, cfg Config) *ChargeRow {
	row := &ChargeRow{}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	answered := map[int]bool{}
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := int(next.Add(1))
				if n > cfg.Requests {
					return
				}
				req := idempotent.NewRequest(ChargeSubject, []byte(strconv.Itoa(n)))
				rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				t0 := time.Now()
				reply, err := c.RequestMsg(rctx, req)
				d := time.Since(t0)
				cancel()
				if err == nil {
					err = respond.ErrorOf(reply)
				}
				var serr *respond.ServiceError
				mu.Lock()
				switch {
				case err == nil:
					row.Answered++
					row.Latencies = append(row.Latencies, d)
					answered[n] = true
				case errors.As(err, &serr):
					row.Unknown++
				case errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders):
					row.TimedOut++
				default:
					row.Failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	row.Elapsed = time.Since(start)
	slices.Sort(row.Latencies)
	row.answered = answered
	return row
}

// writeCharge prints the rows side by side.
func writeCharge(w io.Writer, rows []*ChargeRow) {
	fmt.Fprintf(w, "%-26s %8s %8s %8s %9s %8s %8s %8s %8s %7s %7s %8s  %s\n",
		"pattern", "p50", "p99", "req/s", "answered", "unknown", "timeout", "hedges", "retries", "once", "twice+", "never", "verified")
	for _, r := range rows {
		verdict := "yes: every request charged at most once, every answered one exactly once"
		if !r.Verified() {
			verdict = fmt.Sprintf("NO: %d charged twice or more (%d extra charges)", r.Twice, r.Extra)
			if r.AnsweredNotOnce > r.Twice {
				verdict += fmt.Sprintf(", %d answered but not charged once", r.AnsweredNotOnce)
			}
		}
		fmt.Fprintf(w, "%-26s %8s %8s %8.0f %9d %8d %8d %8d %8d %7d %7d %8d  %s\n",
			r.Name, ms(hedge.Percentile(r.Latencies, 50)), ms(hedge.Percentile(r.Latencies, 99)),
			float64(r.Answered)/r.Elapsed.Seconds(), r.Answered, r.Unknown, r.TimedOut+r.Failed,
			r.Hedges, r.Retries, r.Once, r.Twice, r.Never, verdict)
	}
	fmt.Fprintln(w, "\nunknown: an error reply from the middleware (409: the copy waited for a member that died holding the key's claim); the charge happened once, its caller must ask again later")
}
