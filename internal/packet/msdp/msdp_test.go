package msdp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func hexb(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var a = netip.MustParseAddr

// Golden messages laid out by hand from RFC 3618 section 12.
var golden = []struct {
	name string
	hex  string
	msg  Message
}{
	{"keepalive", "04 0003", Keepalive{}},
	{"sa one entry", "01 0014 01 0aff0001  000000 20 ef010101 0a00010a",
		&SA{RP: a("10.255.0.1"), Entries: []Entry{{Source: a("10.0.1.10"), Group: a("239.1.1.1")}}}},
	{"sa two entries", "01 0020 02 c0000201  000000 20 e8010101 c6336401  000000 20 e0000127 c6336402",
		&SA{RP: a("192.0.2.1"), Entries: []Entry{{Source: a("198.51.100.1"), Group: a("232.1.1.1")}, {Source: a("198.51.100.2"), Group: a("224.0.1.39")}}}},
	{"sa-response", "03 0014 01 0aff0001  000000 20 ef010101 0a00010a",
		&SA{Response: true, RP: a("10.255.0.1"), Entries: []Entry{{Source: a("10.0.1.10"), Group: a("239.1.1.1")}}}},
	{"sa with data", "01 0018 01 0aff0001  000000 20 ef010101 0a00010a  45000000",
		&SA{RP: a("10.255.0.1"), Entries: []Entry{{Source: a("10.0.1.10"), Group: a("239.1.1.1")}}, Data: []byte{0x45, 0, 0, 0}}},
	{"sa-request", "02 0008 00 ef010101", &SARequest{Group: a("239.1.1.1")}},
	{"unknown type 5", "05 0005 0102", &Unknown{T: 5, Value: []byte{1, 2}}},
	// Captured from FRR 8.4.4's pimd (RP 10.255.1.1) in TestMSDPWithFRR.
	{"frr 8.4 sa (captured)", "010014010aff010100000020ef0101010a00010a",
		&SA{RP: a("10.255.1.1"), Entries: []Entry{{Source: a("10.0.1.10"), Group: a("239.1.1.1")}}}},
}

func TestGolden(t *testing.T) {
	for _, g := range golden {
		b := hexb(t, g.hex)
		m, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		if !reflect.DeepEqual(m, g.msg) {
			t.Errorf("%s: parsed %#v, want %#v", g.name, m, g.msg)
		}
		if out := g.msg.Marshal(); !bytes.Equal(out, b) {
			t.Errorf("%s: marshal % x, want % x", g.name, out, b)
		}
	}
}

// A stream of TLVs split at every byte boundary decodes to the same messages.
func TestNextStream(t *testing.T) {
	var stream []byte
	for _, g := range golden {
		stream = append(stream, hexb(t, g.hex)...)
	}
	for cut := range len(stream) + 1 {
		buf := append([]byte(nil), stream[:cut]...)
		rest := stream[cut:]
		var got []Message
		for {
			m, n, err := Next(buf)
			if errors.Is(err, ErrShort) {
				if len(rest) == 0 {
					break
				}
				buf, rest = append(buf, rest...), nil
				continue
			}
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			got = append(got, m)
			buf = buf[n:]
		}
		if len(got) != len(golden) || len(buf) != 0 {
			t.Fatalf("cut %d: %d messages, %d bytes left", cut, len(got), len(buf))
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range []struct{ name, hex, want string }{
		{"length under header", "04 0002", "shorter than its header"},
		{"length over max", "01 23f0 01", "maximum"},
		{"keepalive with body", "04 0004 00", "keepalive of length 4"},
		{"sa count past end", "01 0014 02 0aff0001  000000 20 ef010101 0a00010a", "says 2 entries"},
		{"sa no entries", "01 0008 00 0aff0001", "no entries"},
		{"sa prefix length 24", "01 0014 01 0aff0001  000000 18 ef010101 0a00010a", "prefix length 24"},
		{"request length", "02 0009 00 ef010101 00", "SA-Request of length 9"},
		{"request unicast group", "02 0008 00 0a000001", "not a multicast group"},
	} {
		_, err := Parse(hexb(t, c.hex))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestSplitSA(t *testing.T) {
	var es []Entry
	for i := range 1000 {
		es = append(es, Entry{Source: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Group: a("239.1.1.1")})
	}
	sas := SplitSA(a("10.255.0.1"), es)
	var back []Entry
	for _, m := range sas {
		b := m.Marshal()
		if len(b) > MaxLen {
			t.Fatalf("SA of %d bytes", len(b))
		}
		p, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, p.(*SA).Entries...)
	}
	if len(sas) != 4 || !reflect.DeepEqual(back, es) {
		t.Fatalf("%d SAs, %d entries back", len(sas), len(back))
	}
}

func FuzzParse(f *testing.F) {
	for _, g := range golden {
		f.Add(hexb(f, g.hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			m, n, err := Next(b)
			if err != nil {
				return
			}
			if n < headerLen || n > len(b) {
				t.Fatalf("used %d of %d", n, len(b))
			}
			// What parses re-encodes to the same bytes, and back.
			out := m.Marshal()
			if !bytes.Equal(out, b[:n]) {
				// Reserved octets are not kept.
				again, err := Parse(out)
				if err != nil || !reflect.DeepEqual(again, m) {
					t.Fatalf("round trip: % x -> %#v -> % x (%v)", b[:n], m, out, err)
				}
			}
			b = b[n:]
		}
	})
}
