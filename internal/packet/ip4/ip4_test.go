package ip4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"
)

// An IGMPv2 leave as sent by the Linux host stack (see ../igmp/testdata).
const linuxLeave = "46c00020000040000102fa0a0a090002e0000002940400001700f7faef020202"

func TestParseLinuxPacket(t *testing.T) {
	b, _ := hex.DecodeString(linuxLeave)
	h, payload, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Src != netip.MustParseAddr("10.9.0.2") || h.Dst != netip.MustParseAddr("224.0.0.2") ||
		h.TTL != 1 || h.Protocol != ProtoIGMP || !h.RouterAlert || h.TOS != 0xc0 || len(payload) != 8 {
		t.Fatalf("got %+v payload %x", h, payload)
	}
	// Marshal rebuilds the same bytes, checksum included.
	h.ID = 0
	if re := h.Marshal(payload); !bytes.Equal(re, b) {
		t.Fatalf("marshal\n got %x\nwant %x", re, b)
	}
}

func TestParseErrors(t *testing.T) {
	b, _ := hex.DecodeString(linuxLeave)
	for _, bad := range [][]byte{nil, b[:19], b[:22], append([]byte{0x66}, b[1:]...), append([]byte{0x44}, b[1:]...)} {
		if _, _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%x) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := hex.DecodeString(linuxLeave)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := Parse(b)
		if err != nil {
			return
		}
		if len(p) > len(b) || len(h.Options) > 40 {
			t.Fatalf("payload %d options %d from %d bytes", len(p), len(h.Options), len(b))
		}
	})
}

func TestFixPartialUDPChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.1.10"), netip.MustParseAddr("239.1.1.1")
	payload := []byte("overcast test payload!!") // odd length
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 5001)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	pkt := Header{TTL: 32, Protocol: ProtoUDP, Src: src, Dst: dst}.Marshal(udp)
	// The full checksum, computed the textbook way: pseudo header + UDP.
	pseudo := append(append(append(src.AsSlice(), dst.AsSlice()...), 0, ProtoUDP), byte(len(udp)>>8), byte(len(udp)))
	want := Checksum(append(pseudo, udp...))
	// What a CHECKSUM_PARTIAL sender leaves: the folded pseudo-header sum.
	partial := ^Checksum(pseudo)
	binary.BigEndian.PutUint16(pkt[26:], partial)
	if !FixPartialUDPChecksum(pkt) || binary.BigEndian.Uint16(pkt[26:]) != want {
		t.Fatalf("checksum %#04x, want %#04x", binary.BigEndian.Uint16(pkt[26:]), want)
	}
	// A complete checksum, right or wrong, is not touched.
	if FixPartialUDPChecksum(pkt) {
		t.Fatal("changed a complete checksum")
	}
	binary.BigEndian.PutUint16(pkt[26:], 0x1234)
	if FixPartialUDPChecksum(pkt) || binary.BigEndian.Uint16(pkt[26:]) != 0x1234 {
		t.Fatal("changed a wrong checksum that is not a partial one")
	}
}
