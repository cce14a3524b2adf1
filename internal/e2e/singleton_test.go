package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// trackedConf exports the service "single" from SVC to CLIENT with the
// default (singleton) response type and latency tracking on: every request
// sampled, the measurements published on "latency.single".
const trackedConf = `
accounts: {
  SVC: {
    users: [{user: svc, password: svc}]
    exports: [{service: "single", latency: {sampling: 100%, subject: "latency.single"}}]
  }
  CLIENT: {
    users: [{user: client, password: client}]
    imports: [{service: {account: SVC, subject: "single"}}]
  }
}
`

// TestSingletonImportAcrossProcesses is multireply's
// TestSingletonImportAcrossServers for the one setting the race detector
// cannot run in process: latency tracking with the responders on another
// node. There nats-server v2.15.3 races with itself (ServiceLatency.merge
// in remoteLatencyUpdate writes what internalSendLoop is marshalling), so
// here the servers are processes, built without -race. Plain nats.go
// requests, an inbox each: the first reply, then a look for a second
// within 250 ms. What always holds is asserted (one reply at least, one
// per responder at most); how many requests got two is logged. docs/
// multireply.md ("Scatter-gather across accounts") cites the figures.
func TestSingletonImportAcrossProcesses(t *testing.T) {
	const responders, requests = 2, 20
	bin := binaries(t)
	conf := filepath.Join(t.TempDir(), "accounts.conf")
	require.NoError(t, os.WriteFile(conf, []byte(trackedConf), 0o600))
	nodes := startCluster(t, bin, "-c", conf)
	as := func(user string, n *node) string {
		return strings.Replace(n.url, "nats://", "nats://"+user+":"+user+"@", 1)
	}

	rc, err := nats.Connect(as("svc", nodes[1]), nats.Name("responders"))
	require.NoError(t, err)
	defer rc.Close()
	for i := range responders {
		_, err := rc.Subscribe("single", func(m *nats.Msg) { _ = m.Respond(fmt.Appendf(nil, "r%d", i)) })
		require.NoError(t, err)
	}
	require.NoError(t, rc.Flush())

	nc, err := nats.Connect(as("client", nodes[0]), nats.Name("requester"))
	require.NoError(t, err)
	defer nc.Close()
	// The responders' interest reaches node-1 over the route: until then
	// a request meets no responders at once.
	waitFor(t, "the service's interest on node-1", func() bool {
		_, err := nc.Request("single", nil, time.Second)
		return err == nil
	})

	two := 0
	for range requests {
		inbox := nc.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		require.NoError(t, err)
		require.NoError(t, nc.PublishRequest("single", inbox, nil))
		_, err = sub.NextMsg(readyTimeout)
		require.NoError(t, err, "the first reply")
		got := 1
		for got <= responders {
			if _, err := sub.NextMsg(250 * time.Millisecond); err != nil {
				require.ErrorIs(t, err, nats.ErrTimeout)
				break
			}
			got++
		}
		require.NoError(t, sub.Unsubscribe())
		require.LessOrEqual(t, got, responders, "more replies than responders")
		if got == 2 {
			two++
		}
	}
	t.Logf("tracking, responders on another node: %d of %d plain nats.go requests got %d replies", two, requests, responders)
}
