// What the tests of package denials_test read of the package's insides.

package denials

import "errors"

// DispatcherSizes reads the sizes of the denial watch's process-wide
// state: waiters by key, hooked connections, probe inboxes registered.
func DispatcherSizes() (waiters, hooked, probes int) {
	registry.Lock()
	waiters, hooked = len(registry.waiters), len(registry.hooked)
	registry.Unlock()
	probeAnswers.Lock()
	probes = len(probeAnswers.watch)
	probeAnswers.Unlock()
	return waiters, hooked, probes
}

// The insides the tests name.
const (
	ProbeAnswerKept = probeAnswerKept
	DenyPublish     = denyPublish
	DenySubscribe   = denySubscribe
	DenyReply       = denyReply
)

// ParseViolation is parseViolation.
var ParseViolation = parseViolation

// ViolationOf returns the server's violation a denial error wraps, nil if
// err is none.
func ViolationOf(err error) error {
	var d deniedError
	if !errors.As(err, &d) {
		return nil
	}
	return d.err
}
