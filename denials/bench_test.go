package denials_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// BenchmarkRequest compares one request-reply round trip through
// denials.Request (an inbox subscription per request, denials within a round
// trip) with nats.go's RequestWithContext (one shared response mux), on one
// embedded server, plain and under -secure's permissions.
func BenchmarkRequest(b *testing.B) {
	for _, secure := range []bool{false, true} {
		name := "plain"
		if secure {
			name = "secure"
		}
		b.Run(name, func(b *testing.B) {
			var env *cli.Env
			if secure {
				var err error
				env, err = cli.EmbeddedSecure("bench", cli.Lockdown{Service: []string{"svc.*"}})
				require.NoError(b, err)
			} else {
				env = cli.NewEnv("bench", testserver.New(b).ClientURL())
			}
			b.Cleanup(func() { require.NoError(b, env.Close()) })
			svc, err := env.ConnectAs(cli.Responder, "service")
			require.NoError(b, err)
			_, err = svc.Subscribe("svc.*", func(m *nats.Msg) { _ = m.Respond(nil) })
			require.NoError(b, err)
			require.NoError(b, svc.Flush())
			nc, err := env.ConnectAs(cli.Requester, "requester")
			require.NoError(b, err)
			b.Run("denials.Request", func(b *testing.B) {
				for b.Loop() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					_, err := denials.Request(ctx, nc, nats.NewMsg("svc.a"))
					cancel()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("nats.RequestWithContext", func(b *testing.B) {
				for b.Loop() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					_, err := nc.RequestWithContext(ctx, "svc.a", nil)
					cancel()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
