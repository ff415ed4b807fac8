// Package msdp encodes and decodes MSDP messages (RFC 3618 section 12):
// TLVs of a one-byte type and a two-byte length that counts the whole
// TLV, carried back to back on a TCP connection.
package msdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// TLV types (RFC 3618 section 17; 5 was Notification in drafts).
const (
	TypeSA         = 1
	TypeSARequest  = 2
	TypeSAResponse = 3
	TypeKeepalive  = 4
)

// MaxLen is the largest TLV (RFC 3618 section 12: 9192 octets; a
// message longer than that is an error).
const MaxLen = 9192

// headerLen is the type and length octets.
const headerLen = 3

// saFixed is the SA's fixed part: header, entry count, RP address.
const saFixed = headerLen + 1 + 4

// entryLen is one (S,G) entry: 3 reserved octets, prefix length, group, source.
const entryLen = 12

// MaxEntries is how many (S,G) entries one SA holds (the count is one octet).
const MaxEntries = 255

// Message is a decoded TLV.
type Message interface {
	Type() uint8
	// Marshal encodes the whole TLV.
	Marshal() []byte
}

// Entry is one (S,G) of a Source-Active message.
type Entry struct {
	Source netip.Addr
	Group  netip.Addr
}

// SA is a Source-Active (type 1) or SA-Response (type 3, Response set):
// the sources RP has seen for their groups, optionally with the first data
// packet of the one source it carries (Data, a whole IPv4 packet).
type SA struct {
	Response bool
	RP       netip.Addr
	Entries  []Entry
	Data     []byte
}

// Type implements Message.
func (m *SA) Type() uint8 {
	if m.Response {
		return TypeSAResponse
	}
	return TypeSA
}

// Marshal encodes the SA. It panics on more than MaxEntries entries or a
// message over MaxLen: callers split (SplitSA).
func (m *SA) Marshal() []byte {
	n := saFixed + entryLen*len(m.Entries) + len(m.Data)
	if len(m.Entries) > MaxEntries || n > MaxLen {
		panic(fmt.Sprintf("msdp: SA of %d entries, %d bytes", len(m.Entries), n))
	}
	b := make([]byte, 0, n)
	b = append(b, m.Type())
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, byte(len(m.Entries)))
	b = append(b, addr4(m.RP)...)
	for _, e := range m.Entries {
		b = append(b, 0, 0, 0, 32)
		b = append(b, addr4(e.Group)...)
		b = append(b, addr4(e.Source)...)
	}
	return append(b, m.Data...)
}

// SplitSA packs entries from one RP into as few SAs as fit.
func SplitSA(rp netip.Addr, entries []Entry) []*SA {
	var out []*SA
	per := min(MaxEntries, (MaxLen-saFixed)/entryLen)
	for len(entries) > 0 {
		n := min(per, len(entries))
		out = append(out, &SA{RP: rp, Entries: entries[:n:n]})
		entries = entries[n:]
	}
	return out
}

// SARequest (type 2) asks a peer for the sources it has cached for Group.
type SARequest struct {
	Group netip.Addr
}

// Type implements Message.
func (*SARequest) Type() uint8 { return TypeSARequest }

// Marshal encodes the request: header, a reserved octet, the group.
func (m *SARequest) Marshal() []byte {
	b := []byte{TypeSARequest, 0, 8, 0}
	return append(b, addr4(m.Group)...)
}

// Keepalive (type 4) keeps the session up.
type Keepalive struct{}

// Type implements Message.
func (Keepalive) Type() uint8 { return TypeKeepalive }

// Marshal encodes the keepalive.
func (Keepalive) Marshal() []byte { return []byte{TypeKeepalive, 0, 3} }

// Unknown is a TLV of a type this package does not decode; the receiver
// counts and skips it (RFC 3618 section 12: unknown types are ignored).
type Unknown struct {
	T     uint8
	Value []byte
}

// Type implements Message.
func (m *Unknown) Type() uint8 { return m.T }

// Marshal encodes the TLV as received.
func (m *Unknown) Marshal() []byte {
	b := []byte{m.T}
	b = binary.BigEndian.AppendUint16(b, uint16(headerLen+len(m.Value)))
	return append(b, m.Value...)
}

// ErrShort says the buffer ends inside a TLV: read more.
var ErrShort = errors.New("msdp: incomplete message")

// Next decodes the first TLV of b and returns it with the bytes it used.
// ErrShort means b holds only part of it. Any other error is a malformed
// message, after which the stream cannot be trusted: RFC 3618 resets the
// connection.
func Next(b []byte) (Message, int, error) {
	if len(b) < headerLen {
		return nil, 0, ErrShort
	}
	t := b[0]
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if n < headerLen {
		return nil, 0, fmt.Errorf("msdp: type %d length %d is shorter than its header", t, n)
	}
	if n > MaxLen {
		return nil, 0, fmt.Errorf("msdp: type %d length %d is over the %d maximum", t, n, MaxLen)
	}
	if len(b) < n {
		return nil, 0, ErrShort
	}
	m, err := parse(t, b[:n])
	if err != nil {
		return nil, 0, err
	}
	return m, n, nil
}

// Parse decodes exactly one TLV.
func Parse(b []byte) (Message, error) {
	m, n, err := Next(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("msdp: %d bytes after the message", len(b)-n)
	}
	return m, nil
}

func parse(t uint8, b []byte) (Message, error) {
	switch t {
	case TypeSA, TypeSAResponse:
		return parseSA(t, b)
	case TypeSARequest:
		if len(b) != 8 {
			return nil, fmt.Errorf("msdp: SA-Request of length %d, want 8", len(b))
		}
		g := netip.AddrFrom4([4]byte(b[4:8]))
		if !g.IsMulticast() {
			return nil, fmt.Errorf("msdp: SA-Request for %s, not a multicast group", g)
		}
		return &SARequest{Group: g}, nil
	case TypeKeepalive:
		if len(b) != headerLen {
			return nil, fmt.Errorf("msdp: keepalive of length %d, want 3", len(b))
		}
		return Keepalive{}, nil
	default:
		return &Unknown{T: t, Value: append([]byte(nil), b[headerLen:]...)}, nil
	}
}

func parseSA(t uint8, b []byte) (*SA, error) {
	name := "SA"
	if t == TypeSAResponse {
		name = "SA-Response"
	}
	if len(b) < saFixed {
		return nil, fmt.Errorf("msdp: %s of length %d, shorter than its fixed %d", name, len(b), saFixed)
	}
	count := int(b[3])
	if count == 0 {
		return nil, fmt.Errorf("msdp: %s with no entries", name)
	}
	end := saFixed + count*entryLen
	if len(b) < end {
		return nil, fmt.Errorf("msdp: %s says %d entries (%d bytes) in %d bytes", name, count, end, len(b))
	}
	m := &SA{Response: t == TypeSAResponse, RP: netip.AddrFrom4([4]byte(b[4:8])), Entries: make([]Entry, count)}
	for i := range count {
		e := b[saFixed+i*entryLen:]
		if e[3] != 32 {
			return nil, fmt.Errorf("msdp: %s entry %d has source prefix length %d, want 32", name, i, e[3])
		}
		m.Entries[i] = Entry{Group: netip.AddrFrom4([4]byte(e[4:8])), Source: netip.AddrFrom4([4]byte(e[8:12]))}
	}
	if len(b) > end {
		m.Data = append([]byte(nil), b[end:]...)
	}
	return m, nil
}

func addr4(a netip.Addr) []byte {
	if !a.Is4() {
		return []byte{0, 0, 0, 0}
	}
	b := a.As4()
	return b[:]
}
