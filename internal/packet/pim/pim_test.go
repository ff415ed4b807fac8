package pim

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"overcast/internal/testkit"
)

// capture returns the PIM packets FRR 8.4.4 sent (testdata/frr-8.4.txt).
func capture(t testing.TB) []testkit.Captured {
	out := testkit.Captures(t, "testdata/frr-8.4.txt")
	if len(out) < 9 {
		t.Fatalf("only %d captured packets", len(out))
	}
	return out
}

// mustHex reads hex with spaces and "# comments" to the end of each line.
func mustHex(s string) []byte {
	var clean []string
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		clean = append(clean, strings.Fields(line)...)
	}
	b, err := hex.DecodeString(strings.Join(clean, ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Every FRR packet decodes to what tshark said it was and re-encodes to
// the same bytes.
func TestFRRCaptures(t *testing.T) {
	kinds := map[string]int{}
	for i, c := range capture(t) {
		m, err := Parse(c.Payload)
		if err != nil {
			t.Fatalf("packet %d (%s): %v", i, c.Summary, err)
		}
		if !bytes.Equal(m.Marshal(), c.Payload) {
			t.Errorf("packet %d (%s) re-encodes differently:\n got %x\nwant %x", i, c.Summary, m.Marshal(), c.Payload)
		}
		switch m := m.(type) {
		case *Hello:
			kinds["Hello"]++
			if m.Holdtime != 105 || !m.HasLANPruneDelay || m.PropagationDelay != 500 || m.OverrideInterval != 2500 || m.TrackingSupport ||
				!m.HasDRPriority || m.DRPriority != 1 || !m.HasGenerationID || m.GenerationID == 0 {
				t.Errorf("hello %d: %+v", i, m)
			}
			if c.IP.TTL != 1 || c.IP.Dst != AllPIMRouters {
				t.Errorf("hello %d sent with TTL %d to %s", i, c.IP.TTL, c.IP.Dst)
			}
		case *JoinPrune:
			kinds["Join/Prune"]++
			// FRR's (S,G) joins toward 10.1.12.1 for 232.1.1.1 and 239.1.1.1.
			if m.Upstream != netip.MustParseAddr("10.1.12.1") || m.Holdtime != 210 || len(m.Groups) != 1 ||
				len(m.Groups[0].Joins) != 1 || len(m.Groups[0].Prunes) != 0 {
				t.Fatalf("join/prune %d: %+v", i, m)
			}
			j := m.Groups[0].Joins[0]
			if j.Addr != netip.MustParseAddr("10.1.1.10") || !j.Sparse || j.WC || j.RPT || j.MaskLen != 32 || m.Groups[0].Group.Prefix.Bits() != 32 {
				t.Errorf("join %d: %+v", i, j)
			}
		case *Register:
			kinds["Register"]++
			s, g := m.InnerSourceGroup()
			if m.Null || m.Border || s != netip.MustParseAddr("10.1.1.10") || g != netip.MustParseAddr("239.1.1.1") || len(m.Packet) != 92 {
				t.Errorf("register %d: null %v border %v %s -> %s, %d bytes", i, m.Null, m.Border, s, g, len(m.Packet))
			}
		case *RegisterStop:
			kinds["Register-stop"]++
			if m.Group.Prefix != netip.MustParsePrefix("239.1.1.1/32") || m.Source != netip.MustParseAddr("10.1.1.10") {
				t.Errorf("register-stop %d: %+v", i, m)
			}
		}
		if !strings.HasPrefix(c.Summary, map[uint8]string{0: "Hello", 1: "Register", 2: "Register-stop", 3: "Join/Prune"}[m.Type()]) {
			t.Errorf("packet %d: decoded as type %d, tshark says %q", i, m.Type(), c.Summary)
		}
	}
	if kinds["Hello"] < 2 || kinds["Join/Prune"] < 2 || kinds["Register"] < 2 || kinds["Register-stop"] < 1 {
		t.Errorf("capture kinds %v", kinds)
	}
}

func TestHelloGolden(t *testing.T) {
	h := NewHello(105, 500, 2500, true, 7, 0xdeadbeef, []netip.Addr{netip.MustParseAddr("10.9.9.9")})
	want := mustHex(`
		2000 ad97          # v2 hello, checksum
		0001 0002 0069     # holdtime 105
		0002 0004 81f4 09c4 # LAN prune delay: T, 500 ms, 2500 ms
		0013 0004 00000007 # DR priority 7
		0014 0004 deadbeef # generation ID
		0018 0006 0100 0a090909 # address list: 10.9.9.9`)
	got := h.Marshal()
	if Checksum(got) != 0 {
		t.Fatalf("checksum does not verify: %x", got)
	}
	want[2], want[3] = got[2], got[3] // checked above; the rest is compared byte for byte
	if !bytes.Equal(got, want) {
		t.Fatalf("hello\n got %x\nwant %x", got, want)
	}
	back, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	bh := back.(*Hello)
	if !bh.TrackingSupport || bh.DRPriority != 7 || bh.GenerationID != 0xdeadbeef || len(bh.Addresses) != 1 || bh.HoldtimeDuration().Seconds() != 105 {
		t.Fatalf("%+v", bh)
	}
	// A hello built from fields alone (no Options) encodes the same.
	bare := &Hello{Holdtime: 105, HasLANPruneDelay: true, TrackingSupport: true, PropagationDelay: 500, OverrideInterval: 2500,
		HasDRPriority: true, DRPriority: 7, HasGenerationID: true, GenerationID: 0xdeadbeef, Addresses: h.Addresses}
	if !bytes.Equal(bare.Marshal(), got) {
		t.Fatalf("field-built hello differs")
	}
	// Goodbye: holdtime 0 only.
	bye, _ := Parse((&Hello{Holdtime: 0}).Marshal())
	if bye.(*Hello).Holdtime != 0 {
		t.Fatal("goodbye hello lost its zero holdtime")
	}
}

func TestJoinPruneGolden(t *testing.T) {
	rp := netip.MustParseAddr("10.255.0.2")
	s := netip.MustParseAddr("10.1.1.10")
	jp := &JoinPrune{Upstream: netip.MustParseAddr("10.1.12.2"), Holdtime: 210, Groups: []GroupSet{{
		Group:  GroupPrefix(netip.MustParseAddr("239.1.1.1")),
		Joins:  []Source{{Addr: rp, MaskLen: 32, Sparse: true, WC: true, RPT: true}}, // (*,G)
		Prunes: []Source{{Addr: s, MaskLen: 32, Sparse: true, RPT: true}},            // (S,G,rpt)
	}}}
	got := jp.Marshal()
	want := mustHex(`
		2300 0000            # v2 join/prune, checksum (filled below)
		0100 0a010c02        # upstream 10.1.12.2
		00 01 00d2           # reserved, 1 group, holdtime 210
		0100 0020 ef010101   # group 239.1.1.1/32
		0001 0001            # 1 join, 1 prune
		0100 0720 0aff0002   # join  (*,G): S|WC|RPT, RP 10.255.0.2/32
		0100 0520 0a01010a   # prune (S,G,rpt): S|RPT, 10.1.1.10/32`)
	copy(want[2:4], got[2:4])
	if !bytes.Equal(got, want) || Checksum(got) != 0 || jp.Len() != len(got) {
		t.Fatalf("join/prune\n got %x\nwant %x", got, want)
	}
	back, err := Parse(got)
	if err != nil || !reflect.DeepEqual(back, jp) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func TestRegisterGolden(t *testing.T) {
	s, g := netip.MustParseAddr("10.1.1.10"), netip.MustParseAddr("239.1.1.1")
	null := &Register{Null: true, Packet: NullRegisterPacket(s, g)}
	got := null.Marshal()
	want := mustHex(`
		2100 0000                # v2 register, checksum over these 8 bytes only
		4000 0000                # N bit
		4500 0014 0000 0000 0067 0000 0a01010a ef010101 # inner header: no payload, proto 103`)
	copy(want[2:4], got[2:4])
	copy(want[18:20], got[18:20]) // inner header checksum, verified below
	if !bytes.Equal(got, want) || Checksum(got[:8]) != 0 || Checksum(got[8:]) != 0 {
		t.Fatalf("null register\n got %x\nwant %x", got, want)
	}
	back, err := Parse(got)
	if err != nil || !back.(*Register).Null {
		t.Fatalf("%+v %v", back, err)
	}
	// A register checksummed over the whole packet (old Cisco) is accepted.
	whole := append([]byte(nil), got...)
	whole[2], whole[3] = 0, 0
	sum := Checksum(whole)
	whole[2], whole[3] = byte(sum>>8), byte(sum)
	if _, err := Parse(whole); err != nil {
		t.Fatalf("whole-packet checksum: %v", err)
	}
	rs := &RegisterStop{Group: GroupPrefix(g), Source: s}
	b := rs.Marshal()
	if !bytes.Equal(b[4:], mustHex(`0100 0020 ef010101  0100 0a01010a`)) {
		t.Fatalf("register-stop %x", b)
	}
}

func TestAssertBootstrapCRPRoundTrip(t *testing.T) {
	msgs := []Message{
		&Assert{Group: GroupPrefix(netip.MustParseAddr("239.1.1.1")), Source: netip.MustParseAddr("10.1.1.10"), Preference: 110, Metric: 20},
		&Assert{Group: GroupPrefix(netip.MustParseAddr("239.1.1.1")), Source: netip.IPv4Unspecified(), RPT: true, Preference: AssertInfinity, Metric: 0xffffffff},
		&Bootstrap{FragmentTag: 7, HashMaskLen: 30, Priority: 64, BSR: netip.MustParseAddr("10.255.0.2"), Groups: []BSRGroup{{
			Group: Group{Prefix: netip.MustParsePrefix("224.0.0.0/4")}, RPCount: 2, FragRPCount: 2,
			RPs: []BSRRP{{Addr: netip.MustParseAddr("10.255.0.2"), Holdtime: 150, Priority: 192}, {Addr: netip.MustParseAddr("10.255.0.3"), Holdtime: 150, Priority: 0}}}}},
		&CRPAdv{Priority: 192, Holdtime: 150, RP: netip.MustParseAddr("10.255.0.2"),
			Groups: []Group{{Prefix: netip.MustParsePrefix("239.0.0.0/8")}, {Prefix: netip.MustParsePrefix("232.0.0.0/8"), AdminZone: true}}},
	}
	for _, m := range msgs {
		b := m.Marshal()
		if Checksum(b) != 0 || b[0] != 0x20|m.Type() {
			t.Fatalf("%T: header %x checksum %x", m, b[:4], Checksum(b))
		}
		back, err := Parse(b)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("%T round trip: %+v %v", m, back, err)
		}
	}
	a := msgs[0].Marshal()
	if !bytes.Equal(a[4:], mustHex(`0100 0020 ef010101   0100 0a01010a   0000006e 00000014`)) {
		t.Fatalf("assert body %x", a[4:])
	}
}

func TestParseErrors(t *testing.T) {
	good := (&JoinPrune{Upstream: netip.MustParseAddr("10.0.0.1"), Holdtime: 210, Groups: []GroupSet{{
		Group: GroupPrefix(netip.MustParseAddr("239.1.1.1")), Joins: []Source{{Addr: netip.MustParseAddr("10.1.1.1"), MaskLen: 32, Sparse: true}}}}}).Marshal()
	// Every truncation of a valid message is an error, never a panic.
	for n := range len(good) {
		b := append([]byte(nil), good[:n]...)
		if len(b) >= 4 {
			b[2], b[3] = 0, 0
			s := Checksum(b)
			b[2], b[3] = byte(s>>8), byte(s)
		}
		if _, err := Parse(b); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	fix := func(b []byte) []byte {
		b = append([]byte(nil), b...)
		b[2], b[3] = 0, 0
		s := Checksum(b)
		b[2], b[3] = byte(s>>8), byte(s)
		return b
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	cases := map[string]struct {
		b    []byte
		kind error
	}{
		"checksum":       {bad, ErrChecksum},
		"version 1":      {fix(append([]byte{0x10}, good[1:]...)), ErrVersion},
		"type 9":         {fix(append([]byte{0x29}, good[1:]...)), ErrUnknownType},
		"ipv6 upstream":  {fix(append(append([]byte(nil), good[:4]...), append([]byte{2}, good[5:]...)...)), ErrEncoding},
		"255 groups":     {fix(append(append(append([]byte(nil), good[:11]...), 255), good[12:]...)), ErrTruncated},
		"65535 sources":  {fix(append(append(append([]byte(nil), good[:22]...), 0xff, 0xff), good[24:]...)), ErrTruncated},
		"hello bad len":  {fix(mustHex(`2000 0000 0001 0003 006900`)), ErrBadValue},
		"hello overrun":  {fix(mustHex(`2000 0000 0001 0009 0069`)), ErrTruncated},
		"register short": {fix(mustHex(`2100 0000 0000 0000 4500`)), ErrBadValue},
		"mask 33":        {fix(mustHex(`2200 0000 0100 0021 ef010101 0100 0a01010a`)), ErrBadValue},
	}
	for name, c := range cases {
		_, err := Parse(c.b)
		var pe *Error
		if !errors.Is(err, c.kind) || !errors.As(err, &pe) {
			t.Errorf("%s: %v, want %v", name, err, c.kind)
		}
	}
}

// Split keeps every message within the MTU, loses and duplicates nothing,
// and repeats the (*,G) join with every part of an oversized group.
func TestSplit(t *testing.T) {
	up := netip.MustParseAddr("10.0.0.1")
	var sets []GroupSet
	// 2,000 (S,G) joins over 400 groups of 5 sources each.
	for g := range 400 {
		gs := GroupSet{Group: GroupPrefix(netip.AddrFrom4([4]byte{232, 1, byte(g >> 8), byte(g)}))}
		for s := range 5 {
			gs.Joins = append(gs.Joins, Source{Addr: netip.AddrFrom4([4]byte{10, 0, byte(g), byte(s + 1)}), MaskLen: 32, Sparse: true})
		}
		sets = append(sets, gs)
	}
	// One group with a (*,G) join and 500 (S,G,rpt) prunes.
	big := GroupSet{Group: GroupPrefix(netip.MustParseAddr("239.9.9.9")),
		Joins: []Source{{Addr: netip.MustParseAddr("10.255.0.2"), MaskLen: 32, Sparse: true, WC: true, RPT: true}}}
	for s := range 500 {
		big.Prunes = append(big.Prunes, Source{Addr: netip.AddrFrom4([4]byte{10, 9, byte(s >> 8), byte(s)}), MaskLen: 32, Sparse: true, RPT: true})
	}
	sets = append(sets, big)
	const mtu = 1500 - 20
	msgs := Split(up, 210, sets, mtu)
	joins, prunes := map[[2]netip.Addr]int{}, map[[2]netip.Addr]int{}
	bigParts := 0
	total := 0
	for _, m := range msgs {
		b := m.Marshal()
		total += len(b)
		if len(b) > mtu || len(b) != m.Len() {
			t.Fatalf("message of %d bytes (Len %d) over %d", len(b), m.Len(), mtu)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range back.(*JoinPrune).Groups {
			for _, j := range g.Joins {
				joins[[2]netip.Addr{g.Group.Prefix.Addr(), j.Addr}]++
			}
			for _, p := range g.Prunes {
				prunes[[2]netip.Addr{g.Group.Prefix.Addr(), p.Addr}]++
			}
			if g.Group == big.Group {
				bigParts++
				if len(g.Joins) != 1 || !g.Joins[0].WC {
					t.Fatalf("a part of the big group lacks its (*,G) join: %d joins", len(g.Joins))
				}
			}
		}
	}
	if len(prunes) != 500 || len(joins) != 2001 {
		t.Fatalf("%d joins, %d prunes after split", len(joins), len(prunes))
	}
	for k, n := range prunes {
		if n != 1 {
			t.Fatalf("prune %v sent %d times", k, n)
		}
	}
	for k, n := range joins {
		if n != 1 && k[1] != netip.MustParseAddr("10.255.0.2") {
			t.Fatalf("join %v sent %d times", k, n)
		}
	}
	// Near the minimum: the byte total over the MTU, plus one for the big group's parts.
	if min := (total + mtu - 1) / mtu; len(msgs) > min+bigParts {
		t.Errorf("%d messages where %d would do", len(msgs), min+bigParts)
	}
	t.Logf("2,000 (S,G) joins + (*,G) with 500 (S,G,rpt) prunes: %d messages, %d bytes, big group in %d parts", len(msgs), total, bigParts)
}

func FuzzParse(f *testing.F) {
	for _, c := range capture(f) {
		f.Add(c.Payload)
	}
	f.Add((&Assert{Group: GroupPrefix(netip.MustParseAddr("239.1.1.1")), Source: netip.MustParseAddr("10.1.1.1")}).Marshal())
	f.Add((&Bootstrap{BSR: netip.MustParseAddr("10.0.0.1"), Groups: []BSRGroup{{Group: Group{Prefix: netip.MustParsePrefix("224.0.0.0/4")}, RPs: []BSRRP{{Addr: netip.MustParseAddr("10.0.0.2")}}}}}).Marshal())
	f.Add((&CRPAdv{RP: netip.MustParseAddr("10.0.0.2"), Groups: []Group{{Prefix: netip.MustParsePrefix("224.0.0.0/4")}}}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What parses re-encodes to something that parses to the same.
		again, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("re-encoding of %T does not parse: %v", m, err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(again)) {
			t.Fatalf("%T changed in a round trip:\n%+v\n%+v", m, m, again)
		}
	})
}

// normalize drops what a round trip may legitimately change: trailing
// bytes past the message and raw slices that alias the input.
func normalize(m Message) Message {
	switch m := m.(type) {
	case *Hello:
		c := *m
		c.Options = nil
		return &c
	case *Bootstrap:
		c := *m
		for i := range c.Groups {
			c.Groups[i].FragRPCount = uint8(len(c.Groups[i].RPs))
		}
		return &c
	}
	return m
}
