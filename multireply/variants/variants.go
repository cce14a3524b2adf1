// Package variants makes the three scatter-gather variants by name, each
// with prompt permission denials (Hook): what the multireply program's
// -variant flag and the gather tests pick from.
package variants

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"reqreply/gather"
	"reqreply/gather/natsextgather"
)

// Names are the variants' names, as their Name methods return them and
// the -variant flag takes them.
var Names = []string{"inbox", "shared", "natsext"}

// New returns the named variant on nc ("inbox": gather.Inbox, "shared":
// gather.Mux, "natsext": natsextgather.Natsext), with Hook as its Denials,
// and a function that releases it (the shared Mux's subscription). An
// unknown name is an error wrapping nats.ErrInvalidArg; NewMux's errors
// are returned as they are.
func New(name string, nc *nats.Conn) (gather.Variant, func() error, error) {
	none := func() error { return nil }
	switch name {
	case "inbox":
		return gather.Inbox{Conn: nc, Denials: Hook{}}, none, nil
	case "natsext":
		return natsextgather.Natsext{Conn: nc, Denials: Hook{}}, none, nil
	case "shared":
		m, err := gather.NewMux(nc, gather.WithDenials(Hook{}))
		if err != nil {
			return nil, nil, err
		}
		return m, m.Close, nil
	}
	return nil, nil, fmt.Errorf("variant %q: want one of %s: %w", name, strings.Join(Names, ", "), nats.ErrInvalidArg)
}
