// Command singlereply shows the simplest request-reply on NATS: one request,
// one reply. A greeter subscribes to greet.* and answers "hello, <name>";
// the requester asks for greet.joe, greet.sue and greet.bob (or the names
// given as arguments) and prints each reply.
//
//	go run ./singlereply [-timeout 500ms] [-serve | -request | -secure | -cluster N] [-context NAME] [name ...]
//
// -secure runs it locked down: an embedded server where the requester may
// only publish to greet.* and read its own inbox, and the greeter may only
// take those requests and reply (see security/locked-down.conf).
//
// -cluster N runs it on an embedded cluster of N nodes (1..5); from 2 on, the greeter
// on node-1 and the requester on node-2; before its first request the
// requester waits, with readiness probes, until the greeter's interest is
// visible from its node (see topology.go). NATS_URL listing several servers
// places them the same way.
package main
