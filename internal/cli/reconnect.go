// The reconnect policy every connection of every program follows, and the
// flags that set it.

package cli

import (
	"flag"
	"fmt"
	"time"
)

// Reconnect is what a connection does when it loses its server: nats.go
// tries the servers it knows again, waiting Wait between rounds over the
// same server, until one answers or every server has failed Max attempts in
// a row; then the connection is closed for good. While it is disconnected,
// publishes and requests go to nats.go's reconnect buffer (8 MiB), sent
// once a server answers; a request whose timeout runs out first fails with
// nats.ErrTimeout.
type Reconnect struct {
	// Wait is the pause between attempts on the same server: > 0; 2 s, as
	// nats.go's default (-reconnect-wait). nats.go adds up to 100 ms of
	// jitter.
	Wait time.Duration
	// Max is how many attempts each server gets before it is given up: -1
	// forever (the default), 0 no reconnect at all, N that many
	// (-max-reconnects). nats.go's own default, 60, gives up after about 2
	// minutes.
	Max int
}

// DefaultReconnect is the policy of every connection unless the flags say
// otherwise: retry every 2 s, forever. A service (-serve) should ride out a
// server restart of any length, as on a rolling upgrade, and come back by
// itself; the events on stderr say when it is disconnected, and every
// request still fails within its own timeout meanwhile, so a requester never
// stalls. A finite -max-reconnects makes a run end instead: a -serve whose
// connection is closed for good exits 1 and says why.
var DefaultReconnect = Reconnect{Wait: 2 * time.Second, Max: -1}

// AddFlags registers -reconnect-wait and -max-reconnects on fs, writing to r.
// Main does this for every program.
func (r *Reconnect) AddFlags(fs *flag.FlagSet) {
	fs.DurationVar(&r.Wait, "reconnect-wait", r.Wait, "after losing the server, wait this long between attempts to reach it again")
	fs.IntVar(&r.Max, "max-reconnects", r.Max, "attempts per server before the connection is closed for good (-1: forever, 0: never reconnect)")
}

// Check refuses a Wait ≤ 0 or a Max below -1, with an error wrapping
// ErrUsage.
func (r Reconnect) Check() error {
	switch {
	case r.Wait <= 0:
		return Usagef("-reconnect-wait %v must be > 0", r.Wait)
	case r.Max < -1:
		return Usagef("-max-reconnects %d: want -1 (forever), 0 (never) or more", r.Max)
	}
	return nil
}

// String says the policy in words, for the disconnect event.
func (r Reconnect) String() string {
	switch {
	case r.Max < 0:
		return fmt.Sprintf("retrying every %v, forever", r.Wait)
	case r.Max == 0:
		return "not retrying (-max-reconnects 0)"
	default:
		return fmt.Sprintf("retrying every %v, at most %d times per server", r.Wait, r.Max)
	}
}
