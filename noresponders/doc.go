// Command noresponders shows how NATS fails a request that nobody can
// answer: at once, with "no responders", instead of after the timeout. A
// greeter subscribed to greet.* answers one request ("hello, joe") and
// drains its subscription; the same request sent again finds no subscriber,
// the server replies with a status-503 message, and nats.go returns
// nats.ErrNoResponders. The program prints how long that failure took next
// to the timeout it would otherwise have waited. With -silent it also sends a
// request to a subscriber that never answers, which does wait out the whole
// timeout: interest without an answer is not "no responders".
//
//	go run ./noresponders [-timeout 2s] [-silent] [-serve | -request | -secure | -cluster N] [-context NAME]
//
// -secure runs it locked down: an embedded server where the requester may
// only publish to greet.* and silent.* and read its own inbox, and the
// responders may only take those requests and reply (see
// security/locked-down.conf).
//
// -cluster N runs it on an embedded cluster of N nodes (1..5); from 2 on, the
// responders on node-1 and the requester on node-2. The requester waits,
// with readiness probes, until the greeter's interest is visible from its
// node, and after the greeter has drained until its node answers "no
// responders": only then has the loss of interest crossed the route, and
// only then does the request fail fast (see topology.go). NATS_URL listing
// several servers places them the same way.
package main
