// What the external tests (package gather_test) read of a Mux's insides.

package gather

import "github.com/nats-io/nats.go"

// RC is the Mux's own connection.
func (m *Mux) RC() *nats.Conn { return m.rc }

// Sub is the Mux's "<inbox>.*" subscription.
func (m *Mux) Sub() *nats.Subscription { return m.sub }

// Prefix is the Mux's "<inbox>." prefix.
func (m *Mux) Prefix() string { return m.prefix }

// InFlight is how many gathers are registered on the Mux.
func (m *Mux) InFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.gathers)
}

// Counts reads Received and Late under one lock.
func (m *Mux) Counts() (received, late int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.received, m.late
}

// Lock holds the Mux's lock, under which its handler routes each reply:
// while it is held, no reply is routed.
func (m *Mux) Lock() { m.mu.Lock() }

// Unlock releases what Lock holds.
func (m *Mux) Unlock() { m.mu.Unlock() }
