package pim

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Hello option types (RFC 7761 section 4.9.2; 24 from RFC 4601).
const (
	OptHoldtime     = 1
	OptLANPruneDly  = 2
	OptDRPriority   = 19
	OptGenerationID = 20
	OptAddressList  = 24
)

// Hello is a PIM Hello. Pointers and flags mark options that were present;
// options this package does not interpret are kept in Unknown so a
// re-encoding is byte-identical.
type Hello struct {
	Holdtime uint16 // seconds; 0xffff never times out, 0 means "forget me now"

	HasLANPruneDelay bool
	TrackingSupport  bool   // T bit: this router disables join suppression
	PropagationDelay uint16 // ms, 15 bits
	OverrideInterval uint16 // ms

	HasDRPriority bool
	DRPriority    uint32

	HasGenerationID bool
	GenerationID    uint32

	// Secondary addresses (option 24). Only IPv4 entries are decoded;
	// others (FRR lists its IPv6 link-local) are kept raw in Unknown order.
	Addresses []netip.Addr

	Options []Option // every option in wire order, for byte-exact re-encoding
}

// Option is a raw Hello option.
type Option struct {
	Type  uint16
	Value []byte
}

// HoldtimeDuration is the holdtime as a duration.
func (h *Hello) HoldtimeDuration() time.Duration { return time.Duration(h.Holdtime) * time.Second }

// Type implements Message.
func (*Hello) Type() uint8 { return TypeHello }

func parseHello(b []byte) (*Hello, error) {
	h := &Hello{}
	r := &reader{b: b}
	sawHold := false
	for r.off < len(b) {
		t, err := r.u16("option type")
		if err != nil {
			return nil, err
		}
		n, err := r.u16("option length")
		if err != nil {
			return nil, err
		}
		if err := r.need(int(n), "option value"); err != nil {
			return nil, err
		}
		v := b[r.off : r.off+int(n)]
		start := r.off
		r.off += int(n)
		h.Options = append(h.Options, Option{Type: t, Value: v})
		bad := func() error { return errorf(ErrBadValue, start-4+HeaderLen, "option %d with length %d", t, n) }
		switch t {
		case OptHoldtime:
			if n != 2 {
				return nil, bad()
			}
			h.Holdtime, sawHold = binary.BigEndian.Uint16(v), true
		case OptLANPruneDly:
			if n != 4 {
				return nil, bad()
			}
			h.HasLANPruneDelay = true
			h.TrackingSupport = v[0]&0x80 != 0
			h.PropagationDelay = binary.BigEndian.Uint16(v) & 0x7fff
			h.OverrideInterval = binary.BigEndian.Uint16(v[2:])
		case OptDRPriority:
			if n != 4 {
				return nil, bad()
			}
			h.HasDRPriority, h.DRPriority = true, binary.BigEndian.Uint32(v)
		case OptGenerationID:
			if n != 4 {
				return nil, bad()
			}
			h.HasGenerationID, h.GenerationID = true, binary.BigEndian.Uint32(v)
		case OptAddressList:
			// Encoded-Unicast addresses, IPv4 (6 bytes) or IPv6 (18 bytes).
			for off := 0; off < len(v); {
				if len(v)-off < 2 {
					return nil, bad()
				}
				var l int
				switch v[off] {
				case 1:
					l = 6
				case 2:
					l = 18
				default:
					return nil, errorf(ErrEncoding, start+off+HeaderLen, "address list family %d", v[off])
				}
				if len(v)-off < l || v[off+1] != encodingNative {
					return nil, bad()
				}
				if v[off] == 1 {
					h.Addresses = append(h.Addresses, netip.AddrFrom4([4]byte(v[off+2:off+6])))
				}
				off += l
			}
		}
	}
	if !sawHold {
		// RFC 7761 4.9.2: the holdtime option must be present; treat a
		// hello without it as the default 105 s, as FRR and Cisco do.
		h.Holdtime = 105
	}
	return h, nil
}

// NewHello builds a hello with the usual options in the usual order
// (holdtime, LAN prune delay, DR priority, generation ID, address list).
func NewHello(holdtime uint16, propDelay, override uint16, tracking bool, drPriority, genID uint32, secondary []netip.Addr) *Hello {
	h := &Hello{Holdtime: holdtime, HasLANPruneDelay: true, TrackingSupport: tracking, PropagationDelay: propDelay,
		OverrideInterval: override, HasDRPriority: true, DRPriority: drPriority, HasGenerationID: true, GenerationID: genID,
		Addresses: secondary}
	h.Options = h.buildOptions()
	return h
}

func (h *Hello) buildOptions() []Option {
	var opts []Option
	opts = append(opts, Option{OptHoldtime, binary.BigEndian.AppendUint16(nil, h.Holdtime)})
	if h.HasLANPruneDelay {
		pd := h.PropagationDelay & 0x7fff
		if h.TrackingSupport {
			pd |= 0x8000
		}
		v := binary.BigEndian.AppendUint16(nil, pd)
		opts = append(opts, Option{OptLANPruneDly, binary.BigEndian.AppendUint16(v, h.OverrideInterval)})
	}
	if h.HasDRPriority {
		opts = append(opts, Option{OptDRPriority, binary.BigEndian.AppendUint32(nil, h.DRPriority)})
	}
	if h.HasGenerationID {
		opts = append(opts, Option{OptGenerationID, binary.BigEndian.AppendUint32(nil, h.GenerationID)})
	}
	if len(h.Addresses) > 0 {
		var v []byte
		for _, a := range h.Addresses {
			v = appendUnicast(v, a)
		}
		opts = append(opts, Option{OptAddressList, v})
	}
	return opts
}

// Marshal encodes the hello. When Options is set (a parsed hello, or one
// from NewHello) it is written as is; otherwise the options are built
// from the fields.
func (h *Hello) Marshal() []byte {
	opts := h.Options
	if opts == nil {
		opts = h.buildOptions()
	}
	b := make([]byte, HeaderLen, 64)
	for _, o := range opts {
		b = binary.BigEndian.AppendUint16(b, o.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(o.Value)))
		b = append(b, o.Value...)
	}
	return finish(TypeHello, b, len(b))
}
