package dataplane

import "overcast/internal/mirror"

// Mirror is traffic mirroring's data path: tap flows classify packets of
// ports in the kernel and send copies to their services. Apply makes the
// running set the one given, all or nothing: Check first (ports exist,
// collectors are routable, every program loads), then the differences
// only (unchanged flows keep running and counting).
type Mirror interface {
	Check(s mirror.Set) error
	Apply(s mirror.Set) error
	// Counters by flow name, and whether the flow is attached.
	Counters() map[string]MirrorFlowState
	Close() error
}

// MirrorFlowState is one flow's counters and attachment as the kernel
// has them.
type MirrorFlowState struct {
	Counters mirror.Counters
	Attached bool   // every hook of its direction is in place
	Detail   string // why not, when not
	Note     string // what the operator should know (copies fragmented on the underlay)
}
