// Package idempotent makes hedged and retried requests safe for writes:
// the requester puts an idempotency key on the request (Header), every copy
// of it carries the same key (first, hedge, retry), and a responder-side
// middleware runs the handler once per key and answers every other copy
// with the reply of that one run.
//
// The requester side: NewRequest makes a request with a fresh key (SetKey,
// KeyOf for one of the caller's own); send it with nats.go's own
// nc.RequestMsgWithContext, once or in a retry loop, or with
// reqreply/hedge's Client.RequestMsg, which puts its headers on every copy.
//
// The responder side: a Middleware around a Func, a handler that returns its
// reply instead of sending it, so that the reply can be stored. Where the
// claims and the stored replies live is the Store:
//   - Memory, in the process: for one responder, or a queue group whose
//     copies all land on the same member;
//   - KV, a JetStream key-value bucket: for a queue group, where the copies
//     of a request land on different members. A create-if-absent write
//     (jetstream.KeyValue.Create) is the claim, the reply is stored under
//     the key with the bucket's TTL (KeyValue.Update), a copy that waits
//     reads the key until it is there, and on a cluster the bucket is
//     replicated (KeyValueConfig.Replicas). This is NATS's own replicated
//     store, not one of the package's.
//
// A copy that arrives while the first runs waits for its reply; one that
// arrives later gets the stored reply, marked with ReplayedHeader. When the
// store cannot be reached the middleware fails closed: an error reply with
// code 503, and the handler does not run. It never runs the handler twice
// for a key the store still holds; a key kept for less time than the
// caller retries (Memory's MaxAge, the bucket's TTL) lets a late copy run
// it again.
//
// The package imports only the standard library, github.com/nats-io/nats.go
// and its jetstream and micro subpackages (micro for the error reply's
// header names), so its directory can be copied alone into another module.
//
// A responder and a requester:
//
//	mw := idempotent.New(idempotent.NewKV(kv), func(m *nats.Msg) *nats.Msg {
//		return &nats.Msg{Data: charge(m.Data)}
//	}, idempotent.Options{})
//	sub, err := nc.QueueSubscribe("charge", "payments", mw.ServeMsg)
//	...
//	reply, err := c.RequestMsg(ctx, idempotent.NewRequest("charge", []byte("10.00")))
package idempotent
