package testserver

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
)

// TestBaseOptions checks the settings every server starts from and that
// each Option changes only its own field.
func TestBaseOptions(t *testing.T) {
	alice := &server.User{Username: "alice", Password: "pw"}
	tests := []struct {
		name string
		opts []Option
		want func(o *server.Options)
	}{
		{name: "defaults", want: func(*server.Options) {}},
		{name: "logging", opts: []Option{WithLogging()}, want: func(o *server.Options) { o.NoLog = false }},
		{name: "name", opts: []Option{WithServerName("alpha")}, want: func(o *server.Options) { o.ServerName = "alpha" }},
		{name: "max payload", opts: []Option{WithMaxPayload(512)}, want: func(o *server.Options) { o.MaxPayload = 512 }},
		{name: "jetstream", opts: []Option{WithJetStream("/tmp/js")}, want: func(o *server.Options) { o.JetStream, o.StoreDir = true, "/tmp/js" }},
		{name: "users", opts: []Option{WithUsers(alice)}, want: func(o *server.Options) { o.Users = []*server.User{alice} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true}
			tc.want(want)
			assert.Equal(t, want, baseOptions(tc.opts))
		})
	}
}
