// A key whose header name differs only in case from Header (an HTTP/2
// gateway lowercases every header name) is the same key.

package idempotent_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/idempotent"
	"reqreply/respond"
)

// TestKeyHeaderCase: copies of one request whose key travels under
// "idempotency-key" or "IDEMPOTENCY-KEY" run the handler once, on every
// store; read by KeyOf as the key it is.
func TestKeyHeaderCase(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(kind.name, func(t *testing.T) {
			e := kind.make(t)
			var l ledger
			ms := startMembers(t, e, 3, charger(&l, nil, nil), idempotent.Options{})
			nc := connect(t, e.servers[0])

			key := idempotent.NewKey()
			for i, name := range []string{"idempotency-key", "IDEMPOTENCY-KEY", idempotent.Header, "idempotency-key"} {
				msg := &nats.Msg{Subject: subject, Header: nats.Header{name: {key}}}
				assert.Equal(t, key, idempotent.KeyOf(msg), name)
				reply := request(t, nc, msg)
				assert.Equal(t, "charged 1", string(reply.Data), "copy %d under %q", i, name)
			}
			assert.Equal(t, 1, l.times(key))
			assert.Equal(t, int64(1), runs(ms))
		})
	}
}

// TestEmptyKey: a request whose key header is there but empty (SetKey with
// an order number that was never filled in) is refused with 400, as
// CheckKey refuses "", on every store; before, it ran unprotected, once
// per copy.
func TestEmptyKey(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(kind.name, func(t *testing.T) {
			e := kind.make(t)
			var l ledger
			ms := startMembers(t, e, 3, charger(&l, nil, nil), idempotent.Options{})
			nc := connect(t, e.servers[0])
			for _, name := range []string{idempotent.Header, "idempotency-key"} {
				msg := &nats.Msg{Subject: subject, Header: nats.Header{name: {""}}}
				var serr *respond.ServiceError
				require.ErrorAs(t, respond.ErrorOf(request(t, nc, msg)), &serr, name)
				assert.Equal(t, "400", serr.Code)
			}
			assert.Equal(t, int64(0), runs(ms))
		})
	}
}
