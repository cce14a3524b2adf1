// Forwarders for multireply until it moves; remove at merge. The code
// lives in reqreply/denials and reqreply/probe.

package cli

import (
	"reqreply/denials"
	"reqreply/probe"
)

// forwarders for multireply until it moves; remove at merge
var (
	ErrDenied        = denials.ErrDenied        // denials.ErrDenied
	SubscribeChecked = denials.SubscribeChecked // denials.SubscribeChecked
	WatchDenials     = denials.Watch            // denials.Watch
	Violation        = denials.Violation        // denials.Violation
	AnswerProbe      = probe.Answer             // probe.Answer
	IsProbe          = probe.Is                 // probe.Is
	AwaitResponders  = probe.Await              // probe.Await
	AllOf            = probe.AllOf              // probe.AllOf
)

// ProbeHeader forwards probe.Header for multireply until it moves; remove at merge.
const ProbeHeader = probe.Header
