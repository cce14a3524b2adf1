package denials_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/internal/cli/clitest"
)

// However a denials.Request ends, it ends on time (a close or a cancel during
// the wait within one round trip) and leaves nothing behind: no
// subscription on the client or the server (a no-responders status too),
// no goroutine.
func TestRequestEndingsLeaveNothing(t *testing.T) {
	clitest.RequestEndings(t, "svc.", func(ctx context.Context, nc *nats.Conn, token string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := denials.Request(ctx, nc, nats.NewMsg("svc."+token))
		return err
	})
}
