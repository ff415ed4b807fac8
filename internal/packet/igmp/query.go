package igmp

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Query is a Membership Query. Version is inferred from the wire as RFC 3376
// section 7.1 says: 8 bytes with Max Resp 0 is v1, 8 bytes otherwise v2,
// 12 or more bytes v3.
type Query struct {
	Version     int
	MaxResp     time.Duration // v2/v3; 0 for v1
	Group       netip.Addr    // unspecified for a general query
	SuppressRtr bool          // v3 S flag
	QRV         uint8         // v3 querier's robustness variable
	QQI         time.Duration // v3 querier's query interval
	Sources     []netip.Addr  // v3 group-and-source-specific
}

func (*Query) igmpType() uint8 { return TypeQuery }

// IsGeneral reports whether the query is for all groups.
func (q *Query) IsGeneral() bool { return !q.Group.IsValid() || q.Group.IsUnspecified() }

func parseQuery(b []byte) (*Query, error) {
	q := &Query{Group: addrAt(b, 4)}
	if !q.Group.IsUnspecified() && !q.Group.IsMulticast() {
		return nil, errorf(ErrBadGroup, 4, "group %s", q.Group)
	}
	switch {
	case len(b) == 8 && b[1] == 0:
		q.Version = 1
		return q, nil
	case len(b) == 8:
		q.Version = 2
		q.MaxResp = dsToDuration(int(b[1]))
		return q, nil
	case len(b) < 12:
		// RFC 3376 7.1: 9-11 bytes is not a valid query.
		return nil, errorf(ErrTruncated, 8, "query of %d bytes, need 8 or >= 12", len(b))
	}
	q.Version = 3
	q.MaxResp = dsToDuration(DecodeCode(b[1]))
	q.SuppressRtr = b[8]&0x08 != 0
	q.QRV = b[8] & 0x07
	q.QQI = time.Duration(DecodeCode(b[9])) * time.Second
	n := int(binary.BigEndian.Uint16(b[10:12]))
	if need := 12 + 4*n; len(b) < need {
		return nil, errorf(ErrTruncated, 10, "%d sources need %d bytes, have %d", n, need, len(b))
	}
	if n > 0 {
		q.Sources = make([]netip.Addr, n)
		for i := range n {
			q.Sources[i] = addrAt(b, 12+4*i)
		}
	}
	return q, nil
}

// Marshal encodes the query in its Version's format.
func (q *Query) Marshal() []byte {
	if q.Version == 1 || q.Version == 2 {
		b := make([]byte, 8)
		b[0] = TypeQuery
		if q.Version == 2 {
			b[1] = uint8(min(durationToDs(q.MaxResp), 255))
		}
		putAddr(b[4:8], q.Group)
		return finish(b)
	}
	b := make([]byte, 12+4*len(q.Sources))
	b[0] = TypeQuery
	b[1] = EncodeCode(durationToDs(q.MaxResp))
	putAddr(b[4:8], q.Group)
	b[8] = q.QRV & 0x07
	if q.SuppressRtr {
		b[8] |= 0x08
	}
	b[9] = EncodeCode(int(q.QQI / time.Second))
	binary.BigEndian.PutUint16(b[10:12], uint16(len(q.Sources)))
	for i, s := range q.Sources {
		putAddr(b[12+4*i:], s)
	}
	return finish(b)
}
