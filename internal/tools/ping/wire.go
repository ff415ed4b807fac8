// Package ping is multicast ping: a prober sends numbered probes to a group
// and every responder that joined it answers by unicast, so the prober sees
// who receives the group, with RTT, TTL on arrival and loss. Responders also
// answer ssmping/asmping clients (the ssmpingd protocol), so Debian's
// `ssmping` and `asmping` work against them.
package ping

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Port is where responders listen: the ssmpingd port, so one responder
// serves both protocols.
const Port = 4321

// Probe is what a prober sends to the group.
type Probe struct {
	ID    uint32     // prober instance
	Seq   uint64     // probe number
	Sent  int64      // prober's clock, unix ns
	Group netip.Addr // the group probed (the responder checks it joined it)
}

// Reply is a responder's unicast answer.
type Reply struct {
	Probe
	TTL  uint8  // IP TTL the probe arrived with
	Name string // responder's name (host name by default)
}

const (
	probeMagic = "OVP1"
	replyMagic = "OVR1"
	probeLen   = 4 + 4 + 8 + 8 + 4
)

// ErrNotPing marks packets of neither protocol.
var ErrNotPing = errors.New("not a ping packet")

// MarshalProbe encodes a probe.
func MarshalProbe(p Probe) []byte {
	b := make([]byte, probeLen)
	putProbe(b, probeMagic, p)
	return b
}

func putProbe(b []byte, magic string, p Probe) {
	copy(b, magic)
	binary.BigEndian.PutUint32(b[4:], p.ID)
	binary.BigEndian.PutUint64(b[8:], p.Seq)
	binary.BigEndian.PutUint64(b[16:], uint64(p.Sent))
	if p.Group.Is4() {
		g := p.Group.As4()
		copy(b[24:], g[:])
	}
}

func getProbe(b []byte) Probe {
	return Probe{
		ID:    binary.BigEndian.Uint32(b[4:]),
		Seq:   binary.BigEndian.Uint64(b[8:]),
		Sent:  int64(binary.BigEndian.Uint64(b[16:])),
		Group: netip.AddrFrom4([4]byte(b[24:28])),
	}
}

// ParseProbe decodes a probe.
func ParseProbe(b []byte) (Probe, error) {
	if len(b) < probeLen || string(b[:4]) != probeMagic {
		return Probe{}, ErrNotPing
	}
	return getProbe(b), nil
}

// MarshalReply encodes a reply; names longer than 255 bytes are cut.
func MarshalReply(r Reply) []byte {
	name := r.Name
	if len(name) > 255 {
		name = name[:255]
	}
	b := make([]byte, probeLen+2+len(name))
	putProbe(b, replyMagic, r.Probe)
	b[probeLen] = r.TTL
	b[probeLen+1] = byte(len(name))
	copy(b[probeLen+2:], name)
	return b
}

// ParseReply decodes a reply.
func ParseReply(b []byte) (Reply, error) {
	if len(b) < probeLen+2 || string(b[:4]) != replyMagic {
		return Reply{}, ErrNotPing
	}
	r := Reply{Probe: getProbe(b), TTL: b[probeLen]}
	n := int(b[probeLen+1])
	if len(b) < probeLen+2+n {
		return Reply{}, fmt.Errorf("reply name: %d bytes announced, %d present", n, len(b)-probeLen-2)
	}
	r.Name = string(b[probeLen+2 : probeLen+2+n])
	return r, nil
}

// ssmping messages (ssmping 0.9, as Debian ships it): one type byte, 'Q' for
// a client's query and 'A' for the server's answer, then TLVs of a 16-bit
// type, a 16-bit length and the value. The server answers with the query's
// TLVs unchanged, by unicast and to the group of the group TLV.
const (
	SSMPingQuery  = 'Q'
	SSMPingAnswer = 'A'
	tlvGroup      = 4 // value: address family (1 = IPv4) and the group
)

// SSMPingDefaultGroup is the group ssmping uses when the query names none.
var SSMPingDefaultGroup = netip.MustParseAddr("232.43.211.234")

// TLV is one ssmping option.
type TLV struct {
	Type  uint16
	Value []byte
}

// SSMPing is a parsed ssmping message.
type SSMPing struct {
	Type byte
	TLVs []TLV
}

// ParseSSMPing decodes an ssmping message, checking every TLV fits.
func ParseSSMPing(b []byte) (SSMPing, error) {
	if len(b) < 1 || (b[0] != SSMPingQuery && b[0] != SSMPingAnswer) {
		return SSMPing{}, ErrNotPing
	}
	m := SSMPing{Type: b[0]}
	for off := 1; off < len(b); {
		if len(b)-off < 4 {
			return SSMPing{}, fmt.Errorf("ssmping: truncated TLV header at byte %d", off)
		}
		t, n := binary.BigEndian.Uint16(b[off:]), int(binary.BigEndian.Uint16(b[off+2:]))
		off += 4
		if len(b)-off < n {
			return SSMPing{}, fmt.Errorf("ssmping: TLV type %d at byte %d wants %d bytes, %d left", t, off-4, n, len(b)-off)
		}
		m.TLVs = append(m.TLVs, TLV{Type: t, Value: b[off : off+n]})
		off += n
	}
	return m, nil
}

// Marshal encodes an ssmping message.
func (m SSMPing) Marshal() []byte {
	b := []byte{m.Type}
	for _, t := range m.TLVs {
		b = binary.BigEndian.AppendUint16(b, t.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

// Group is the group the answer goes to: the group TLV's, or ssmping's
// default when the query names none.
func (m SSMPing) Group() (netip.Addr, error) {
	for _, t := range m.TLVs {
		if t.Type != tlvGroup {
			continue
		}
		if len(t.Value) != 5 || t.Value[0] != 1 {
			return netip.Addr{}, fmt.Errorf("ssmping: group TLV %x is not an IPv4 group", t.Value)
		}
		g := netip.AddrFrom4([4]byte(t.Value[1:5]))
		if !g.IsMulticast() {
			return netip.Addr{}, fmt.Errorf("ssmping: group %s is not multicast", g)
		}
		return g, nil
	}
	return SSMPingDefaultGroup, nil
}
