package igmp

import "net/netip"

// Report is an IGMPv1 (type 0x12) or IGMPv2 (type 0x16) Membership Report.
type Report struct {
	Version int // 1 or 2
	Group   netip.Addr
}

func (r *Report) igmpType() uint8 {
	if r.Version == 1 {
		return TypeV1Report
	}
	return TypeV2Report
}

func parseReport(b []byte) (*Report, error) {
	r := &Report{Version: 2, Group: addrAt(b, 4)}
	if b[0] == TypeV1Report {
		r.Version = 1
	}
	if !r.Group.IsMulticast() {
		return nil, errorf(ErrBadGroup, 4, "report for %s", r.Group)
	}
	return r, nil
}

// Marshal encodes the 8-byte report.
func (r *Report) Marshal() []byte {
	b := make([]byte, 8)
	b[0] = r.igmpType()
	putAddr(b[4:8], r.Group)
	return finish(b)
}

// Leave is an IGMPv2 Leave Group message (type 0x17), sent to 224.0.0.2.
type Leave struct {
	Group netip.Addr
}

func (*Leave) igmpType() uint8 { return TypeLeave }

func parseLeave(b []byte) (*Leave, error) {
	l := &Leave{Group: addrAt(b, 4)}
	if !l.Group.IsMulticast() {
		return nil, errorf(ErrBadGroup, 4, "leave for %s", l.Group)
	}
	return l, nil
}

// Marshal encodes the 8-byte leave.
func (l *Leave) Marshal() []byte {
	b := make([]byte, 8)
	b[0] = TypeLeave
	putAddr(b[4:8], l.Group)
	return finish(b)
}
