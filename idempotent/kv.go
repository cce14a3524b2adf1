// Claims and stored replies in a JetStream key-value bucket: for a queue
// group, whose members see different copies of the same request.

package idempotent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KV is a Store in a JetStream key-value bucket, shared by every member of
// a queue group that uses the same bucket:
//   - the claim is a create-if-absent write of the key (KeyValue.Create):
//     of the copies racing for it, the bucket's stream takes one, and the
//     others get jetstream.ErrKeyExists;
//   - the reply is stored under the key as an update of that claim
//     (KeyValue.Update with the claim's revision), so a claim that expired
//     and was taken again is not overwritten;
//   - a copy that finds the key claimed reads it (KeyValue.Get, a direct
//     get) every PollMin to PollMax until the reply is stored.
//
// How long a key is kept is the bucket's TTL (KeyValueConfig.TTL), counted
// from the claim and again from the stored reply; make it longer than the
// callers' retry window plus the handler's longest run. On a cluster,
// create the bucket with Replicas 3 (or 5): a claim and a reply are then
// acknowledged once a majority of the nodes has stored them, and survive a
// node's loss. Safe for concurrent use. Make one with NewKV.
type KV struct {
	kv jetstream.KeyValue
}

// NewKV returns the Store in kv, a bucket the caller made
// (jetstream.JetStream.CreateKeyValue) with the TTL and replicas it needs.
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

// The values under a key: a claim (pending), then the stored reply.
var pending = []byte("pending")

// stored is a reply as the bucket holds it.
type stored struct {
	Header nats.Header `json:"header,omitempty"`
	Data   []byte      `json:"data"`
}

// Begin is Store.Begin. Its errors wrap ErrStore and the jetstream error
// when the bucket cannot be written or read (no JetStream answering:
// jetstream.ErrNoStreamResponse or nats.ErrNoResponders; ctx's end:
// context.DeadlineExceeded; nats.ErrConnectionClosed), or ErrInProgress
// when ctx ends while the key is claimed and no reply is stored. done's
// error wraps ErrStore when the reply could not be stored; the key then
// stays claimed until the bucket's TTL drops it, and every copy meanwhile
// gets ErrInProgress: it fails closed.
func (s *KV) Begin(ctx context.Context, key string) (func(*nats.Msg) error, *nats.Msg, error) {
	rev, err := s.kv.Create(ctx, key, pending)
	switch {
	case err == nil:
		return func(reply *nats.Msg) error {
			v, err := json.Marshal(stored{Header: reply.Header, Data: reply.Data})
			if err == nil {
				// The claim's context may be spent by a long handler: a
				// fresh one, bounded as the claim was.
				uctx, cancel := context.WithTimeout(context.Background(), DefaultWait)
				defer cancel()
				_, err = s.kv.Update(uctx, key, v, rev)
			}
			if err != nil {
				return fmt.Errorf("store reply of key %q: %w: %w", key, ErrStore, err)
			}
			return nil
		}, nil, nil
	case !errors.Is(err, jetstream.ErrKeyExists):
		return nil, nil, fmt.Errorf("claim key %q: %w: %w", key, ErrStore, err)
	}
	reply, err := s.wait(ctx, key)
	return nil, reply, err
}

// PollMin and PollMax bound the wait between two reads of a key that
// another copy holds: it starts at 1 ms and doubles up to 20 ms. A read is
// one direct get from the bucket's stream; a watch (KeyValue.Watch) would
// create a consumer per waiting copy, which under hedges costs the server
// more than a few reads.
const (
	PollMin = time.Millisecond
	PollMax = 20 * time.Millisecond
)

// wait reads key until a reply is stored under it, or ctx ends.
func (s *KV) wait(ctx context.Context, key string) (*nats.Msg, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for d := PollMin; ; d = min(2*d, PollMax) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("key %q: %w (waited %w)", key, ErrInProgress, ctx.Err())
		}
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound), err == nil && string(e.Value()) == string(pending):
			// Expired or deleted since the claim (the next copy claims it
			// afresh), or still the claim.
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("key %q: %w (waited %w)", key, ErrInProgress, ctx.Err())
		case err != nil:
			return nil, fmt.Errorf("read key %q: %w: %w", key, ErrStore, err)
		default:
			var r stored
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				return nil, fmt.Errorf("read key %q: %w: %w", key, ErrStore, err)
			}
			return &nats.Msg{Header: r.Header, Data: r.Data}, nil
		}
		t.Reset(d)
	}
}
