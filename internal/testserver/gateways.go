// Interest across gateways: what a supercluster's servers know of another
// cluster's subscriptions.

package testserver

import (
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
)

// WaitForGatewayInterest returns nil once every server among servers with an
// outbound gateway to the cluster named cluster knows, over that gateway, of
// a subscription on subject in the global account there, or an error
// wrapping ErrNotReady after ReadyTimeout. nats-server runs the global
// account's gateways in interest-only mode: a message to a subject crosses
// a gateway only once the remote cluster's interest in it has, and that
// interest travels on other connections than the messages do. A server
// whose gateway to cluster is in optimistic mode counts as knowing.
func WaitForGatewayInterest(servers []*server.Server, cluster, subject string) error {
	knows := func(s *server.Server) bool {
		gz, err := s.Gatewayz(&server.GatewayzOptions{Name: cluster, AccountName: server.DEFAULT_GLOBAL_ACCOUNT, AccountSubscriptions: true})
		if err != nil {
			return false
		}
		og := gz.OutboundGateways[cluster]
		if og == nil {
			return true // s is in cluster, or has no gateway to it
		}
		for _, a := range og.Accounts {
			if a.Name == server.DEFAULT_GLOBAL_ACCOUNT && a.InterestMode == server.InterestOnly.String() {
				return slices.Contains(a.Subs, subject)
			}
		}
		return true
	}
	if Settle(func() bool {
		for _, s := range servers {
			if !knows(s) {
				return false
			}
		}
		return true
	}) {
		return nil
	}
	return fmt.Errorf("gateway interest in %q of cluster %s: %w within %s", subject, cluster, ErrNotReady, ReadyTimeout)
}
