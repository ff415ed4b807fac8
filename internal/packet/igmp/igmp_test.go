package igmp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"overcast/internal/packet/ip4"
	"overcast/internal/testkit"
)

var (
	g239 = netip.MustParseAddr("239.1.1.1")
	s10  = netip.MustParseAddr("10.1.0.10")
	s11  = netip.MustParseAddr("10.1.0.11")
)

// capture returns the IGMP payloads of testdata/linux-host.txt (the host stack's own packets).
func capture(t testing.TB) [][]byte {
	var out [][]byte
	for _, c := range testkit.Captures(t, "testdata/linux-host.txt") {
		if c.IP.Protocol != ip4.ProtoIGMP || !c.IP.RouterAlert || c.IP.TTL != 1 {
			t.Fatalf("captured packet header %+v: want IGMP, TTL 1, Router Alert", c.IP)
		}
		out = append(out, c.Payload)
	}
	return out
}

func TestGoldenQueries(t *testing.T) {
	cases := []struct {
		name string
		q    Query
		want string
	}{
		{"v2 general, max resp 10s", Query{Version: 2, MaxResp: 10 * time.Second},
			// type 11, max resp 100 (0x64) ds, checksum, group 0.0.0.0
			"11 64 ee9b 00000000"},
		{"v2 group-specific 1s", Query{Version: 2, MaxResp: time.Second, Group: g239},
			"11 0a fef2 ef010101"},
		{"v3 general, max resp 10s, QRV 2, QQI 125s", Query{Version: 3, MaxResp: 10 * time.Second, QRV: 2, QQI: 125 * time.Second},
			// type, code 100, cksum, group 0, resv/S/QRV=02, QQIC=125 (0x7d), 0 sources
			"11 64 ec1e 00000000 02 7d 0000"},
		{"v3 group-and-source, S flag", Query{Version: 3, MaxResp: time.Second, Group: g239, SuppressRtr: true, QRV: 2, QQI: 125 * time.Second, Sources: []netip.Addr{s10}},
			"11 0a ea69 ef010101 0a 7d 0001 0a01000a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, _ := hex.DecodeString(strings.ReplaceAll(c.want, " ", ""))
			got := c.q.Marshal()
			if !bytes.Equal(got, want) {
				t.Fatalf("marshal\n got %x\nwant %x", got, want)
			}
			m, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(m), normalize(&c.q)) {
				t.Fatalf("round trip: got %+v want %+v", m, c.q)
			}
		})
	}
}

// normalize makes an unset group equal to 0.0.0.0 for comparisons.
func normalize(m Message) Message {
	if q, ok := m.(*Query); ok {
		c := *q
		if !c.Group.IsValid() {
			c.Group = unspecified4
		}
		return &c
	}
	return m
}

func TestCapturedHostPackets(t *testing.T) {
	pkts := capture(t)
	want := []Message{
		&V3Report{Records: []GroupRecord{{Type: ChangeToExclude, Group: g239}}},
		&V3Report{Records: []GroupRecord{{Type: ChangeToExclude, Group: g239}}},
		&V3Report{Records: []GroupRecord{{Type: AllowNewSources, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{s10}}}},
		&V3Report{Records: []GroupRecord{{Type: AllowNewSources, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{s10}}}},
		&V3Report{Records: []GroupRecord{{Type: AllowNewSources, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{s11}}}},
		&V3Report{Records: []GroupRecord{{Type: BlockOldSources, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{s11}}}},
		&V3Report{Records: []GroupRecord{{Type: ChangeToInclude, Group: g239}, {Type: BlockOldSources, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{s10, s11}}}},
		&Report{Version: 2, Group: netip.MustParseAddr("239.2.2.2")},
		&V3Report{Records: []GroupRecord{{Type: ChangeToInclude, Group: g239}, {Type: BlockOldSources, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{s10}}}},
		&Leave{Group: netip.MustParseAddr("239.2.2.2")},
		&Report{Version: 1, Group: netip.MustParseAddr("239.3.3.3")},
		&Report{Version: 1, Group: netip.MustParseAddr("239.3.3.3")},
	}
	if len(pkts) != len(want) {
		t.Fatalf("%d captured packets, want %d", len(pkts), len(want))
	}
	for i, p := range pkts {
		m, err := Parse(p)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !reflect.DeepEqual(m, want[i]) {
			t.Errorf("packet %d: got %+v want %+v", i, m, want[i])
		}
		if re := m.Marshal(); !bytes.Equal(re, p) {
			t.Errorf("packet %d: re-marshal\n got %x\nwant %x", i, re, p)
		}
	}
}

func TestMalformed(t *testing.T) {
	good := (&V3Report{Records: []GroupRecord{{Type: ModeIsInclude, Group: g239, Sources: []netip.Addr{s10}}}}).Marshal()
	badSum := append([]byte{}, good...)
	badSum[3] ^= 0xff
	absurd := append([]byte{}, good...)
	absurd[6], absurd[7] = 0xff, 0xff // 65535 records
	absurd = finish(absurd)
	manySrc := append([]byte{}, good...)
	manySrc[10], manySrc[11] = 0xff, 0xff // 65535 sources in the record
	manySrc = finish(manySrc)
	q9 := finish(append((&Query{Version: 2}).Marshal(), 0))
	unicastGroup := (&Report{Version: 2, Group: s10}).Marshal()
	unknown := finish([]byte{0x13, 0, 0, 0, 0, 0, 0, 0})
	cases := []struct {
		name string
		b    []byte
		kind error
	}{
		{"empty", nil, ErrTruncated},
		{"short", good[:5], ErrTruncated},
		{"bad checksum", badSum, ErrChecksum},
		{"absurd record count", absurd, ErrTruncated},
		{"absurd source count", manySrc, ErrTruncated},
		{"9-byte query", q9, ErrTruncated},
		{"unicast group", unicastGroup, ErrBadGroup},
		{"unknown type", unknown, ErrUnknownType},
	}
	for _, c := range cases {
		_, err := Parse(c.b)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.kind)
		}
	}
}

func TestCodeFloat(t *testing.T) {
	// RFC 3376 4.1.1: every code decodes to a value that encodes back to the same code.
	for c := 0; c < 256; c++ {
		v := DecodeCode(uint8(c))
		if got := EncodeCode(v); got != uint8(c) {
			t.Fatalf("code %d -> %d -> %d", c, v, got)
		}
	}
	if DecodeCode(0xff) != 31744 {
		t.Fatalf("max code = %d", DecodeCode(0xff))
	}
	// Encoding rounds down to a representable value, never up.
	for v := 0; v < 40000; v += 7 {
		if d := DecodeCode(EncodeCode(v)); d > v && v < 31744 {
			t.Fatalf("%d encodes to %d", v, d)
		}
	}
}

func TestV3ReportRoundTrip(t *testing.T) {
	r := &V3Report{Records: []GroupRecord{
		{Type: ModeIsExclude, Group: g239},
		{Type: ModeIsInclude, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{s10, s11}, Aux: []byte{1, 2, 3, 4}},
	}}
	m, err := Parse(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, r) {
		t.Fatalf("got %+v", m)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range capture(f) {
		f.Add(p)
	}
	f.Add((&Query{Version: 3, MaxResp: time.Second, Group: g239, Sources: []netip.Addr{s10}}).Marshal())
	f.Add((&Query{Version: 2, MaxResp: time.Second}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to something that parses to the same message.
		again, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %x: %v", m.Marshal(), err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(m)) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}
