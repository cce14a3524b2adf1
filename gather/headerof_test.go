package gather_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"

	"reqreply/gather"
)

// HeaderOf returns the headers the last Header option gives, nil without
// one, whatever else the options say.
func TestHeaderOf(t *testing.T) {
	a, b := nats.Header{"A": {"1"}}, nats.Header{"B": {"2"}}
	cases := []struct {
		name string
		opts []gather.Option
		want nats.Header
	}{
		{name: "none"},
		{name: "no header", opts: []gather.Option{gather.MaxReplies(1), gather.Timeout(time.Second)}},
		{name: "one", opts: []gather.Option{gather.MaxReplies(1), gather.Header(a), nil}, want: a},
		{name: "the last wins", opts: []gather.Option{gather.Header(a), gather.Header(b)}, want: b},
		{name: "a bad option is skipped", opts: []gather.Option{gather.Header(a), gather.MaxReplies(0)}, want: a},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, gather.HeaderOf(tc.opts...))
		})
	}
}
