// The requester's side: the key, in a header every copy of a request
// carries.

package idempotent

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// Header is the header a request carries its idempotency key in:
// "Idempotency-Key", the name of the IETF HTTPAPI working group's draft
// (draft-ietf-httpapi-idempotency-key-header), which Stripe, PayPal and
// others already send over HTTP. The same name on NATS means a gateway
// between HTTP and NATS passes the key on unchanged, and a reader
// recognises it. The value is opaque to the responder: two requests with
// the same key are the same logical request, whatever their payloads.
const Header = "Idempotency-Key"

// ReplayedHeader marks a reply that was not made for this copy but stored
// from the handler's one run under the key ("true"), as Stripe's
// Idempotent-Replayed does over HTTP. A stored error reply is replayed too.
const ReplayedHeader = "Idempotent-Replayed"

// MaxKeyLen is the longest key accepted: 128 bytes, far more than NewKey's
// 26 and a UUID's 36, and short enough for a key-value bucket's subject.
const MaxKeyLen = 128

// NewKey returns a fresh random key: 26 characters of base32 (crypto/rand's
// Text, 128 bits of randomness), valid as a key-value bucket key.
func NewKey() string { return rand.Text() }

// NewRequest returns a request for subject with data and a fresh key
// (NewKey) in Header. Make it once per logical request, and send that same
// message for every copy: a retry with a new key is a new request.
func NewRequest(subject string, data []byte) *nats.Msg {
	msg := &nats.Msg{Subject: subject, Data: data}
	SetKey(msg, NewKey())
	return msg
}

// SetKey writes key into msg's Header, creating the header map if needed,
// for a caller whose requests have a key of their own (an order number, a
// payment id). CheckKey says whether a responder will accept it.
func SetKey(msg *nats.Msg, key string) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(Header, key)
}

// KeyOf returns msg's key, "" when it carries none. NATS header names are
// case-sensitive, but HTTP's are not, and HTTP/2 lowercases them: a key
// under a name that differs from Header only in case ("idempotency-key")
// is the key too, read when Header itself is absent (of several such names,
// the first in byte order, so that every member reads the same one).
func KeyOf(msg *nats.Msg) string {
	key, _ := keyOf(msg)
	return key
}

// keyOf is KeyOf, and whether msg carries the header at all: an empty key
// is a bad key, not none.
func keyOf(msg *nats.Msg) (key string, ok bool) {
	if v := msg.Header.Values(Header); len(v) > 0 {
		return v[0], true
	}
	name := ""
	for k, v := range msg.Header {
		if len(v) > 0 && strings.EqualFold(k, Header) && (name == "" || k < name) {
			name = k
		}
	}
	if name == "" {
		return "", false
	}
	return msg.Header.Get(name), true
}

// ErrBadKey is wrapped by CheckKey's error, and a request with such a key
// is answered with an error reply with code 400.
var ErrBadKey = fmt.Errorf("bad %s", Header)

// CheckKey returns nil if key can be an idempotency key: 1 to MaxKeyLen
// bytes of letters, digits and "-_=", as a key-value bucket key may be
// (without its dots and slashes, which a bucket reads as a hierarchy).
// Otherwise the error wraps ErrBadKey.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrBadKey, len(key), MaxKeyLen)
	}
	if i := strings.IndexFunc(key, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '=')
	}); i >= 0 {
		return fmt.Errorf("%w: %q has %q at %d (letters, digits and -_= only)", ErrBadKey, key, key[i], i)
	}
	return nil
}
