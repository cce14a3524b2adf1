// Claims and stored replies in the process: for one responder, or a queue
// group whose copies of a request all land on the same member.

package idempotent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultMaxEntries is how many keys a Memory keeps when NewMemory is given
// 0: 10,000, a few seconds of a busy responder's writes, at most a few MB.
const DefaultMaxEntries = 10_000

// DefaultMaxAge is how long a Memory keeps a key when NewMemory is given 0:
// 10 minutes, far longer than any retry window of the suite's clients
// (seconds).
const DefaultMaxAge = 10 * time.Minute

// Memory is a Store in the process's memory: a map of keys to their claim
// and reply, bounded by count (MaxEntries) and by age (MaxAge, from the
// claim), the oldest dropped first. A key in progress is never dropped, so
// the count may exceed MaxEntries by the requests in progress. A key
// dropped is forgotten: a copy that arrives later runs the handler again.
// Safe for concurrent use. Make one with NewMemory.
type Memory struct {
	max int
	age time.Duration
	now func() time.Time

	mu    sync.Mutex
	keys  map[string]*entry
	order []*entry // the entries by claim time, oldest first
}

// entry is one key's claim, and its reply once done is closed.
type entry struct {
	key   string
	at    time.Time
	done  chan struct{}
	reply *nats.Msg // set before done is closed
}

// NewMemory returns a Memory of at most maxEntries keys (DefaultMaxEntries
// when ≤ 0), each kept maxAge (DefaultMaxAge when ≤ 0).
func NewMemory(maxEntries int, maxAge time.Duration) *Memory {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	return &Memory{max: maxEntries, age: maxAge, now: time.Now, keys: map[string]*entry{}}
}

// WithClock replaces m's clock (time.Now), for tests of MaxAge; it returns m.
func (m *Memory) WithClock(now func() time.Time) *Memory {
	m.now = now
	return m
}

// Len returns how many keys m holds now, in progress and done.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// Begin is Store.Begin: the first Begin of a key claims it; a later one
// waits for the reply until ctx ends (ErrInProgress). It never fails with
// ErrStore.
func (m *Memory) Begin(ctx context.Context, key string) (func(*nats.Msg) error, *nats.Msg, error) {
	m.mu.Lock()
	now := m.now()
	e := m.keys[key]
	if e != nil && m.finished(e) && now.Sub(e.at) >= m.age {
		delete(m.keys, key) // expired, and not yet at the front to be evicted
		e = nil
	}
	if e == nil {
		// Room is made for a new key only: a copy of a key held must find
		// it, even at the bound.
		m.evict(now)
		e = &entry{key: key, at: now, done: make(chan struct{})}
		m.keys[key] = e
		m.order = append(m.order, e)
		m.mu.Unlock()
		var once sync.Once
		return func(reply *nats.Msg) error {
			once.Do(func() {
				m.mu.Lock()
				e.reply = clone(reply)
				m.mu.Unlock()
				close(e.done)
			})
			return nil
		}, nil, nil
	}
	m.mu.Unlock()
	select {
	case <-e.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return nil, e.reply, nil
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("key %q: %w (waited %w)", key, ErrInProgress, ctx.Err())
	}
}

// finished reports whether e's reply is in.
func (m *Memory) finished(e *entry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// evict drops the oldest entries while there are too many or they are too
// old. An entry still in progress is kept, and moved to the back to be
// looked at again later, so that the finished entries behind it are
// dropped in its place. Under m.mu.
func (m *Memory) evict(now time.Time) {
	n := 0
	var busy []*entry
	for _, e := range m.order {
		if m.keys[e.key] != e { // replaced after it expired
			n++
			continue
		}
		if !(len(m.keys) >= m.max || now.Sub(e.at) >= m.age) {
			break
		}
		n++
		if !m.finished(e) {
			busy = append(busy, e)
			continue
		}
		delete(m.keys, e.key)
	}
	clear(m.order[:n]) // let the dropped entries go
	m.order = append(m.order[n:], busy...)
}
