// Package overlay encodes and decodes the datagrams of Overcast's overlay
// (docs/OVERLAY.md has the specification): multicast data carried to a
// peer as unicast UDP, and the control messages peers exchange (Hello,
// Interest, SyncRequest), each authenticated with an HMAC of the overlay
// key and numbered against replay.
//
// Every datagram starts with a version octet (1) and a type octet. Data is
// that 4-octet header and the whole IPv4 packet; a control message is a
// 20-octet header (version, type, body length, sender epoch, sequence),
// its body, and a 16-octet HMAC-SHA256 tag over everything before it.
package overlay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Version is the only version this package speaks.
const Version = 1

// Datagram types.
const (
	TypeData        = 0
	TypeHello       = 1
	TypeInterest    = 2
	TypeSyncRequest = 3
)

// DataHeaderLen is the data header; Overhead is what the overlay adds to
// a multicast packet on the underlay (outer IPv4, UDP, data header).
const (
	DataHeaderLen = 4
	Overhead      = 20 + 8 + DataHeaderLen
)

const (
	ctlHeaderLen = 20
	TagLen       = 16
	helloLen     = 8 + 8 + 8 + 4 + 4
	interestHead = 8 + 8 + 1 + 2 + 2
	recordHead   = 4 + 1 + 2
)

// MaxDatagram is the largest control datagram this package writes (it
// fits a 1280-octet path with outer headers to spare).
const MaxDatagram = 1200

// Errors a receiver counts separately.
var (
	ErrShort   = errors.New("overlay: datagram too short")
	ErrVersion = errors.New("overlay: unknown version")
	ErrType    = errors.New("overlay: unknown type")
	ErrAuth    = errors.New("overlay: authentication failed (wrong overlay key?)")
	ErrFormat  = errors.New("overlay: malformed message")
)

// EncodeData puts the data header before an IPv4 packet in b's spare
// room: it returns header+pkt, reusing b when it is large enough.
func EncodeData(b, pkt []byte) []byte {
	b = append(b[:0], Version, TypeData, 0, 0)
	return append(b, pkt...)
}

// DecodeData returns the IPv4 packet a data datagram carries.
func DecodeData(b []byte) ([]byte, error) {
	if len(b) < DataHeaderLen+20 {
		return nil, ErrShort
	}
	if b[0] != Version {
		return nil, ErrVersion
	}
	if b[1] != TypeData {
		return nil, ErrType
	}
	return b[DataHeaderLen:], nil
}

// Kind returns a datagram's type, checking only the version.
func Kind(b []byte) (uint8, error) {
	if len(b) < 2 {
		return 0, ErrShort
	}
	if b[0] != Version {
		return 0, ErrVersion
	}
	return b[1], nil
}

// Header is what every control message carries: the sender's epoch (its
// start time in nanoseconds: a restart has a larger one) and a sequence
// number that only grows within an epoch.
type Header struct {
	Epoch uint64
	Seq   uint64
}

// Message is a decoded control message body.
type Message interface {
	Type() uint8
	appendBody([]byte) []byte
}

// Hello is sent to every peer once a hello interval: liveness, the
// sender's interest version (a receiver that holds another asks for a
// dump), and the timestamps that give the round-trip time.
type Hello struct {
	InterestVersion uint64
	Sent            uint64 // sender's clock, ns
	Echo            uint64 // the last Sent the sender received from the addressee (0: none)
	EchoDelay       uint32 // µs between receiving Echo and sending this
	HoldMillis      uint32 // how long the addressee may consider the sender alive without a hello
}

// Type implements Message.
func (Hello) Type() uint8 { return TypeHello }

func (m Hello) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.InterestVersion)
	b = binary.BigEndian.AppendUint64(b, m.Sent)
	b = binary.BigEndian.AppendUint64(b, m.Echo)
	b = binary.BigEndian.AppendUint32(b, m.EchoDelay)
	return binary.BigEndian.AppendUint32(b, m.HoldMillis)
}

// Mode is a group record's filter mode (as IGMPv3's).
type Mode uint8

const (
	Include Mode = 1
	Exclude Mode = 2
)

func (m Mode) String() string {
	switch m {
	case Include:
		return "include"
	case Exclude:
		return "exclude"
	}
	return fmt.Sprintf("mode%d", uint8(m))
}

// Record is the sender's whole interest in one group: Include with
// sources (SSM or a source list; none: no interest, the record removes
// the group), or Exclude with sources (ASM, all sources but those).
type Record struct {
	Group   netip.Addr
	Mode    Mode
	Sources []netip.Addr
}

// Interest flags.
const (
	FlagDump    = 1 << 0 // part of a full dump (To is the version dumped)
	FlagDumpEnd = 1 << 1 // the dump's last part; Part is the number of parts
)

// Interest carries group records. A delta (no flags) turns the sender's
// interest at version From into version To; a dump's parts carry every
// record of version To, numbered from 0.
type Interest struct {
	From, To uint64
	Flags    uint8
	Part     uint16
	Records  []Record
}

// Type implements Message.
func (Interest) Type() uint8 { return TypeInterest }

func (m Interest) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.From)
	b = binary.BigEndian.AppendUint64(b, m.To)
	b = append(b, m.Flags)
	b = binary.BigEndian.AppendUint16(b, m.Part)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Records)))
	for _, r := range m.Records {
		g := r.Group.As4()
		b = append(b, g[:]...)
		b = append(b, byte(r.Mode))
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.Sources)))
		for _, s := range r.Sources {
			a := s.As4()
			b = append(b, a[:]...)
		}
	}
	return b
}

// RecordLen is the encoded size of a record with n sources.
func RecordLen(n int) int { return recordHead + 4*n }

// MaxRecordBytes is the room for records in one Interest datagram.
const MaxRecordBytes = MaxDatagram - ctlHeaderLen - TagLen - interestHead

// SyncRequest asks the addressee for a full dump of its interest (the
// sender holds Known, or 0 for nothing).
type SyncRequest struct {
	Known uint64
}

// Type implements Message.
func (SyncRequest) Type() uint8 { return TypeSyncRequest }

func (m SyncRequest) appendBody(b []byte) []byte {
	return binary.BigEndian.AppendUint64(b, m.Known)
}

// Marshal encodes a control message and signs it with key.
func Marshal(key []byte, h Header, m Message) []byte {
	b := make([]byte, ctlHeaderLen, 64)
	b[0], b[1] = Version, m.Type()
	binary.BigEndian.PutUint64(b[4:], h.Epoch)
	binary.BigEndian.PutUint64(b[12:], h.Seq)
	b = m.appendBody(b)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-ctlHeaderLen))
	return append(b, tag(key, b)...)
}

func tag(key, b []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	return mac.Sum(nil)[:TagLen]
}

// Parse checks a control message's tag with key and decodes it.
// Authentication comes before any decoding of the body.
func Parse(key, b []byte) (Header, Message, error) {
	if len(b) < ctlHeaderLen+TagLen {
		return Header{}, nil, ErrShort
	}
	if b[0] != Version {
		return Header{}, nil, ErrVersion
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if len(b) != ctlHeaderLen+n+TagLen {
		return Header{}, nil, fmt.Errorf("%w: body length %d in a %d-octet datagram", ErrFormat, n, len(b))
	}
	signed := b[:ctlHeaderLen+n]
	if !hmac.Equal(tag(key, signed), b[ctlHeaderLen+n:]) {
		return Header{}, nil, ErrAuth
	}
	h := Header{Epoch: binary.BigEndian.Uint64(b[4:]), Seq: binary.BigEndian.Uint64(b[12:])}
	body := b[ctlHeaderLen : ctlHeaderLen+n]
	var m Message
	var err error
	switch b[1] {
	case TypeHello:
		m, err = parseHello(body)
	case TypeInterest:
		m, err = parseInterest(body)
	case TypeSyncRequest:
		if len(body) != 8 {
			return h, nil, fmt.Errorf("%w: sync request of %d octets", ErrFormat, len(body))
		}
		m = SyncRequest{Known: binary.BigEndian.Uint64(body)}
	default:
		return h, nil, fmt.Errorf("%w %d", ErrType, b[1])
	}
	return h, m, err
}

func parseHello(b []byte) (Message, error) {
	if len(b) != helloLen {
		return nil, fmt.Errorf("%w: hello of %d octets", ErrFormat, len(b))
	}
	return Hello{
		InterestVersion: binary.BigEndian.Uint64(b),
		Sent:            binary.BigEndian.Uint64(b[8:]),
		Echo:            binary.BigEndian.Uint64(b[16:]),
		EchoDelay:       binary.BigEndian.Uint32(b[24:]),
		HoldMillis:      binary.BigEndian.Uint32(b[28:]),
	}, nil
}

func parseInterest(b []byte) (Message, error) {
	if len(b) < interestHead {
		return nil, fmt.Errorf("%w: interest of %d octets", ErrFormat, len(b))
	}
	m := Interest{
		From:  binary.BigEndian.Uint64(b),
		To:    binary.BigEndian.Uint64(b[8:]),
		Flags: b[16],
		Part:  binary.BigEndian.Uint16(b[17:]),
	}
	n := int(binary.BigEndian.Uint16(b[19:]))
	b = b[interestHead:]
	if n > len(b)/recordHead {
		return nil, fmt.Errorf("%w: %d records in %d octets", ErrFormat, n, len(b))
	}
	m.Records = make([]Record, 0, n)
	for range n {
		if len(b) < recordHead {
			return nil, fmt.Errorf("%w: truncated record", ErrFormat)
		}
		r := Record{Group: netip.AddrFrom4([4]byte(b[:4])), Mode: Mode(b[4])}
		ns := int(binary.BigEndian.Uint16(b[5:]))
		b = b[recordHead:]
		if r.Mode != Include && r.Mode != Exclude {
			return nil, fmt.Errorf("%w: record for %s has mode %d", ErrFormat, r.Group, r.Mode)
		}
		if !r.Group.IsMulticast() {
			return nil, fmt.Errorf("%w: record for %s, not a multicast group", ErrFormat, r.Group)
		}
		if len(b) < 4*ns {
			return nil, fmt.Errorf("%w: record for %s truncated", ErrFormat, r.Group)
		}
		for i := range ns {
			r.Sources = append(r.Sources, netip.AddrFrom4([4]byte(b[4*i:4*i+4])))
		}
		b = b[4*ns:]
		m.Records = append(m.Records, r)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d octets after the records", ErrFormat, len(b))
	}
	return m, nil
}

// PackRecords splits records into groups that each fit one Interest
// datagram. A record too large for one datagram is cut to the sources
// that fit (a group with over 290 sources listed; the caller's limits
// keep records far smaller).
func PackRecords(rs []Record) [][]Record {
	var out [][]Record
	var cur []Record
	size := 0
	for _, r := range rs {
		if max := (MaxRecordBytes - recordHead) / 4; len(r.Sources) > max {
			r.Sources = slices.Clone(r.Sources[:max])
		}
		l := RecordLen(len(r.Sources))
		if size+l > MaxRecordBytes && len(cur) > 0 {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, r)
		size += l
	}
	if len(cur) > 0 || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}
