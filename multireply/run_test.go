package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

func TestConfigCheck(t *testing.T) {
	ok := Config{Responders: 5, Timeout: time.Second, Variant: "shared", Delay: time.Millisecond}
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{name: "defaults", change: func(*Config) {}, ok: true},
		{name: "no responders is allowed", change: func(c *Config) { c.Responders = 0 }, ok: true},
		{name: "negative responders", change: func(c *Config) { c.Responders = -1 }},
		{name: "zero timeout", change: func(c *Config) { c.Timeout = 0 }},
		{name: "negative timeout", change: func(c *Config) { c.Timeout = -time.Second }},
		{name: "negative max", change: func(c *Config) { c.Max = -1 }},
		{name: "negative stall", change: func(c *Config) { c.Stall = -1 }},
		{name: "stall equal to timeout", change: func(c *Config) { c.Stall = time.Second }},
		{name: "negative delay", change: func(c *Config) { c.Delay = -1 }},
		{name: "delay over an hour", change: func(c *Config) { c.Delay = MaxDelay + 1 }},
		{name: "serve nothing", change: func(c *Config) { c.Responders = 0; c.Mode.Serve = true }},
		{name: "serve only a sentinel", change: func(c *Config) { c.Responders = 0; c.Sentinel = true; c.Mode.Serve = true }, ok: true},
		{name: "discover with max", change: func(c *Config) { c.Discover = true; c.Max = 3 }},
		{name: "discover with stall", change: func(c *Config) { c.Discover = true; c.Stall = time.Millisecond }},
		{name: "discover with sentinel", change: func(c *Config) { c.Discover = true; c.Sentinel = true }},
		{name: "discover timeout within its stall", change: func(c *Config) { c.Discover = true; c.Timeout = DiscoverStall }},
		{name: "expect", change: func(c *Config) { c.Expect = true }, ok: true},
		{name: "expect and kill", change: func(c *Config) { c.Expect = true; c.Kill = 4 }, ok: true},
		{name: "kill without expect", change: func(c *Config) { c.Kill = 1 }},
		{name: "kill them all", change: func(c *Config) { c.Expect = true; c.Kill = 5 }},
		{name: "negative kill", change: func(c *Config) { c.Expect = true; c.Kill = -1 }},
		{name: "expect with sentinel", change: func(c *Config) { c.Expect = true; c.Sentinel = true }},
		{name: "unknown variant", change: func(c *Config) { c.Variant = "fastest" }},
		{name: "serve and request", change: func(c *Config) { c.Mode = cli.Mode{Serve: true, Request: true} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.change(&cfg)
			err := cfg.Check()
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, cli.ErrUsage)
		})
	}
}

// replyLine matches one printed reply: arrival time, responder, payload.
var replyLine = regexp.MustCompile(`^\s+\+\S+\s+(responder-\d+)\s+reply from (responder-\d+)$`)

func TestRun(t *testing.T) {
	base := Config{Responders: 5, Timeout: 10 * time.Second, Variant: "shared", Delay: 20 * time.Millisecond, Seed: 1}
	tests := []struct {
		name        string
		change      func(*Config)
		wantReplies int
		atMost      bool // wantReplies is an upper bound: arrival order is up to the scheduler
		wantStop    string
		wantErr     error
	}{
		{name: "max", change: func(c *Config) { c.Max = 5 }, wantReplies: 5, wantStop: "stopped: max reached"},
		{name: "max below responders", change: func(c *Config) { c.Max = 2 }, wantReplies: 2, wantStop: "stopped: max reached"},
		{name: "sentinel", change: func(c *Config) { c.Sentinel = true }, wantReplies: 5, atMost: true, wantStop: "stopped: sentinel"},
		{name: "stall", change: func(c *Config) { c.Delay = 0; c.Stall = 300 * time.Millisecond }, wantReplies: 5, wantStop: "stopped: stalled"},
		{name: "deadline", change: func(c *Config) { c.Timeout = time.Second; c.Delay = 0 }, wantReplies: 5, wantStop: "stopped: deadline"},
		{name: "inbox", change: func(c *Config) { c.Variant = "inbox"; c.Max = 5 }, wantReplies: 5, wantStop: "stopped: max reached"},
		{name: "natsext", change: func(c *Config) { c.Variant = "natsext"; c.Max = 5 }, wantReplies: 5, wantStop: "stopped: max reached"},
		{name: "no responders", change: func(c *Config) { c.Responders = 0 }, wantReplies: 0, wantStop: "stopped: no responders", wantErr: nats.ErrNoResponders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.change(&cfg)
			var out bytes.Buffer
			err := Run(context.Background(), newEnv(t), cfg, &out)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var replies int
			for _, l := range lines {
				if m := replyLine.FindStringSubmatch(l); m != nil {
					replies++
					assert.Equal(t, m[1], m[2], "the header names the responder that sent the payload")
				}
			}
			if tc.atMost {
				assert.LessOrEqual(t, replies, tc.wantReplies, out.String())
				assert.Contains(t, out.String(), fmt.Sprintf(", %s at", tc.wantStop))
				return
			}
			assert.Equal(t, tc.wantReplies, replies, out.String())
			assert.Contains(t, out.String(), fmt.Sprintf("|  %s, %s at", plural(tc.wantReplies, "reply", "replies"), tc.wantStop))
		})
	}
}

// The two halves of the scenario run apart: -serve until cancelled, and
// -request against it, as two programs on one NATS_URL would.
func TestRunHalves(t *testing.T) {
	s := testserver.New(t)
	serveEnv, requestEnv := cli.NewEnv("multireply", s.ClientURL()), cli.NewEnv("multireply", s.ClientURL())
	t.Cleanup(func() { _ = requestEnv.Close(); _ = serveEnv.Close() })
	cfg := Config{Responders: 3, Timeout: 10 * time.Second, Variant: "inbox", Max: 3, Seed: 1}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	serving := cfg
	serving.Mode.Serve = true
	go func() { done <- Run(ctx, serveEnv, serving, &bytes.Buffer{}) }()
	require.NoError(t, testserver.WaitForInterest(s, DemoSubject))
	require.Eventually(t, func() bool { return s.GlobalAccount().Interest(DemoSubject) >= 3 }, 10*time.Second, time.Millisecond,
		"interest in %q never reached %d", DemoSubject, 3)

	requesting := cfg
	requesting.Mode.Request = true
	var out bytes.Buffer
	require.NoError(t, Run(context.Background(), requestEnv, requesting, &out))
	assert.Contains(t, out.String(), "3 replies, stopped: max reached")
	cancel()
	require.NoError(t, <-done)
}

func TestRunDiscover(t *testing.T) {
	for _, variant := range variants.Names {
		t.Run("variant="+variant, func(t *testing.T) {
			var out bytes.Buffer
			cfg := Config{Timeout: 10 * time.Second, Variant: variant, Discover: true}
			require.NoError(t, Run(context.Background(), newEnv(t), cfg, &out))
			got := out.String()
			assert.Contains(t, got, "$SRV.PING.greeter: 3 answers, stopped: stalled")
			assert.Contains(t, got, "$SRV.INFO.greeter: 3 answers, stopped: stalled")
			for _, v := range []string{"1.0.0", "1.0.1", "1.0.2"} {
				assert.Contains(t, got, "greeter "+v+" ")
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		res  gather.Result
		at   []time.Duration
		want string
	}{
		{name: "no replies, deadline", res: gather.Result{Reason: gather.StopDeadline, Elapsed: 100 * ms, Deadline: 100 * ms},
			want: "|                                                 ^|  0 replies, stopped: deadline at 100ms"},
		{name: "max reached early", res: gather.Result{Count: 3, Reason: gather.StopMax, Elapsed: 21 * ms, Deadline: 100 * ms}, at: []time.Duration{0, 10 * ms, 20 * ms},
			want: "|*    *    *^                                      |  3 replies, stopped: max reached at 21ms"},
		{name: "several in one column", res: gather.Result{Count: 12, Reason: gather.StopStalled, Elapsed: 50 * ms, Deadline: 100 * ms},
			at:   []time.Duration{ms, ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms},
			want: "|2#                       ^                        |  12 replies, stopped: stalled at 50ms"},
		{name: "one reply", res: gather.Result{Count: 1, Reason: gather.StopSentinel, Elapsed: 99 * ms, Deadline: 100 * ms}, at: []time.Duration{99 * ms},
			want: "|                                                 *|  1 reply, stopped: sentinel at 99ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Timeline(tc.res, tc.at...))
		})
	}
}

func TestStopReasonString(t *testing.T) {
	for r := gather.StopNone; r <= gather.StopFailed; r++ {
		assert.NotContains(t, r.String(), "StopReason(")
	}
	assert.Equal(t, "StopReason(99)", gather.StopReason(99).String())
}

// Example gathers the replies of five responders with the shared variant,
// stopping as soon as the fifth is in.
func Example() {
	env, err := cli.Embedded("multireply")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()
	responders, err := env.Connect("responders")
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := Serve(context.Background(), responders, DemoSubject, DemoResponders(5, 10*time.Millisecond, 1, false)); err != nil {
		fmt.Println(err)
		return
	}
	nc, err := env.Connect("requester")
	if err != nil {
		fmt.Println(err)
		return
	}
	mux, err := gather.NewMux(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mux.Close()

	res, err := gather.Gather(context.Background(), mux, DemoSubject, nil, gather.Timeout(5*time.Second), gather.MaxReplies(5))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d replies, stopped: %s\n", res.Count, res.Reason)
	var names []string
	for _, r := range res.Replies {
		names = append(names, r.Responder)
	}
	slices.Sort(names)
	fmt.Println(strings.Join(names, " "))
	// Output:
	// 5 replies, stopped: max reached
	// responder-1 responder-2 responder-3 responder-4 responder-5
}

// Example_run is `go run ./multireply -max 5`: five responders, collection
// stopped at the fifth reply. Arrival times and the picture vary from run to
// run, so they are masked here, and the replies may come in any order.
func Example_run() {
	env, err := cli.Embedded("multireply")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()
	cfg := Config{Responders: 5, Timeout: gather.DefaultTimeout, Max: 5, Variant: "shared", Delay: 200 * time.Millisecond, Seed: 1}
	var out bytes.Buffer
	if err := Run(context.Background(), env, cfg, &out); err != nil {
		fmt.Println(err)
	}
	fmt.Print(maskTimes(out.String()))
	// Unordered output:
	// request on gather.demo via shared: deadline 1s, max 5
	// +<t>  responder-1   reply from responder-1
	// +<t>  responder-2   reply from responder-2
	// +<t>  responder-3   reply from responder-3
	// +<t>  responder-4   reply from responder-4
	// +<t>  responder-5   reply from responder-5
	// |<picture>|  5 replies, stopped: max reached at <t>
}

var (
	timePattern    = regexp.MustCompile(`\+?[0-9.]+(ns|µs|ms|s)\b`)
	picturePattern = regexp.MustCompile(`^\|.*\|  `)
)

// maskTimes replaces what varies from run to run in the program's output:
// durations, the picture, and the padding before an arrival time.
func maskTimes(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "request on") {
			continue
		}
		l = picturePattern.ReplaceAllString(l, "|<picture>|  ")
		l = timePattern.ReplaceAllStringFunc(l, func(m string) string {
			if strings.HasPrefix(m, "+") {
				return "+<t>"
			}
			return "<t>"
		})
		lines[i] = strings.TrimLeft(l, " ")
	}
	return strings.Join(lines, "\n")
}

// ExampleTimeline draws five replies in the first quarter of a 1 s deadline,
// collection having stopped at the fifth (MaxReplies(5)).
func ExampleTimeline() {
	ms := time.Millisecond
	res := gather.Result{Count: 5, Reason: gather.StopMax, Elapsed: 210 * ms, Deadline: time.Second}
	fmt.Fprintln(os.Stdout, Timeline(res, 7*ms, 31*ms, 106*ms, 138*ms, 209*ms))
	// Output:
	// |**   **   *^                                      |  5 replies, stopped: max reached at 210ms
}

// Once the gather is over nobody waits for the demo responders' replies:
// they stop, so the drain that ends the program does not wait out their
// delays (an hour here) and succeeds, with or without -max, and after a
// Ctrl-C of -serve.
func TestRunStopsSlowResponders(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{name: "deadline", change: func(*Config) {}},
		{name: "max 1", change: func(c *Config) { c.Max = 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.New(t)
			env := cli.NewEnv("multireply", s.ClientURL())
			cfg := Config{Responders: 3, Timeout: 50 * time.Millisecond, Variant: "shared", Delay: MaxDelay, Seed: 1}
			tc.change(&cfg)
			require.NoError(t, Run(context.Background(), env, cfg, &bytes.Buffer{}))
			require.NoError(t, env.Close(), "the drain did not wait for the responders")
		})
	}
	t.Run("max reached, one responder still busy", func(t *testing.T) {
		s := testserver.New(t)
		env := cli.NewEnv("multireply", s.ClientURL())
		ctx, stop := context.WithCancel(context.Background())
		_, err := Serve(ctx, connect(t, env, "responders"), "svc", []Responder{{Name: "fast"}, {Name: "slow", Delay: MaxDelay}})
		require.NoError(t, err)
		res, err := gather.Gather(context.Background(), gather.Inbox{Conn: connect(t, env, "requester"), Denials: variants.Hook{}}, "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(1))
		require.NoError(t, err)
		assert.Equal(t, "fast", res.Replies[0].Responder)
		stop()
		require.NoError(t, env.Close(), "the drain did not wait for the slow responder")
	})
	t.Run("interrupted -serve", func(t *testing.T) {
		s := testserver.New(t)
		env := cli.NewEnv("multireply", s.ClientURL())
		cfg := Config{Responders: 3, Timeout: time.Second, Variant: "shared", Delay: MaxDelay, Seed: 1, Mode: cli.Mode{Serve: true}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, env, cfg, &bytes.Buffer{}) }()
		require.Eventually(t, func() bool { return s.GlobalAccount().Interest(DemoSubject) >= 3 }, 10*time.Second, time.Millisecond,
			"interest in %q never reached %d", DemoSubject, 3)
		// A request the responders are now busy with, for an hour.
		client := cli.NewEnv("multireply", s.ClientURL())
		t.Cleanup(func() { _ = client.Close() })
		res, err := gather.Gather(context.Background(), gather.Inbox{Conn: connect(t, client, "requester"), Denials: variants.Hook{}}, DemoSubject, nil, gather.Timeout(20*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, gather.StopDeadline, res.Reason)
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, env.Close(), "the drain did not wait for the responders")
	})
}

// On a server without header support the demo responders still answer,
// without headers, and the run says what is missing.
func TestRunWithoutHeaderSupport(t *testing.T) {
	noHeaders := func(o *server.Options) { o.NoHeaderSupport = true }
	for _, variant := range variants.Names {
		t.Run("variant="+variant, func(t *testing.T) {
			cfg := Config{Responders: 3, Timeout: 10 * time.Second, Max: 3, Variant: variant, Delay: time.Millisecond, Seed: 1}
			var out bytes.Buffer
			require.NoError(t, Run(context.Background(), newEnv(t, noHeaders), cfg, &out))
			got := out.String()
			assert.Equal(t, 3, strings.Count(got, "reply from responder-"), got)
			assert.Contains(t, got, "3 replies, stopped: max reached")
			assert.Contains(t, got, "does not support headers")
		})
	}
}
