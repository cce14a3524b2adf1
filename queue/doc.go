// Package queue holds a member of a NATS queue group as a pattern others can
// reuse: Join subscribes a plain nats.MsgHandler in a queue group and
// confirms the interest with a flush; Leave takes the member out gracefully
// by draining its subscription, waiting until the requests it already took
// are answered; Drain does the same for its whole connection, as a process
// does on SIGTERM; Settle waits until every message the server sent the
// member has been handled and its replies have reached the server, so counts
// read afterwards are final.
//
// NATS delivers each message on a subject to one member of each queue group
// subscribed to it, picked at random per message, and to every plain
// subscriber. Members need no registration: a member joins with its
// subscription and leaves with its unsubscribe. What nats.go leaves to its
// user is knowing when: when the server has the interest (a flush), when a
// drained subscription has answered what it held (its SubscriptionClosed
// status, which a connection's close does not send), when a callback has
// returned for every message received (a Barrier).
//
// Hardening attaches from outside: wrap the handler (readiness probes,
// panic recovery) and pass a checked subscribe (WithSubscribe, for example
// reqreply/denials.SubscribeChecked). The package imports only the standard
// library and github.com/nats-io/nats.go, so its directory can be copied
// alone into another module.
//
//	m, err := queue.Join(nc, "work", "workers", func(msg *nats.Msg) {
//		_ = msg.Respond([]byte("done"))
//	})
//	...
//	err = m.Leave(ctx) // the server stops routing to m; what it held is answered
package queue
