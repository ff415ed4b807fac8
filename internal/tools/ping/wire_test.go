package ping

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// Captured from Debian's ssmping 0.9.1 and ssmpingd in namespaces
// (testdata/ssmping-asmping.pcap): UDP payloads of a query and asmping's query.
var (
	ssmpingQuery = mustHex(`51` + // 'Q'
		`0001 0004 000054dc` + // type 1 (client id)
		`0002 0004 00000001` + // type 2 (sequence 1)
		`0003 0008 6b027556000c1ea4` + // type 3 (timestamp)
		`0004 0005 01e82bd3ea`) // type 4: IPv4 group 232.43.211.234
	asmpingQuery = mustHex(`51 0001 0004 000054de 0002 0004 00000001 0003 0008 6b027558000c3632 0004 0005 01ef0909ea`)
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestSSMPingCaptured(t *testing.T) {
	for _, c := range []struct {
		b     []byte
		group string
	}{{ssmpingQuery, "232.43.211.234"}, {asmpingQuery, "239.9.9.234"}} {
		m, err := ParseSSMPing(c.b)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != SSMPingQuery || len(m.TLVs) != 4 {
			t.Fatalf("%+v", m)
		}
		g, err := m.Group()
		if err != nil || g.String() != c.group {
			t.Fatalf("group %v, %v; want %s", g, err, c.group)
		}
		if !bytes.Equal(m.Marshal(), c.b) {
			t.Fatalf("round trip differs:\n%x\n%x", m.Marshal(), c.b)
		}
		// The server's answer in the capture is the query with 'A'.
		m.Type = SSMPingAnswer
		want := append([]byte{'A'}, c.b[1:]...)
		if !bytes.Equal(m.Marshal(), want) {
			t.Fatalf("answer %x", m.Marshal())
		}
	}
	noGroup := mustHex(`51 0002 0004 00000001`)
	m, _ := ParseSSMPing(noGroup)
	if g, _ := m.Group(); g != SSMPingDefaultGroup {
		t.Errorf("default group %s", g)
	}
}

func TestSSMPingErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":         {},
		"other type":    {'X', 0, 1, 0, 0},
		"short TLV hdr": {'Q', 0, 1, 0},
		"TLV overruns":  {'Q', 0, 1, 0, 9, 1, 2},
		"bad group fam": mustHex(`51 0004 0005 02e82bd3ea`),
		"unicast group": mustHex(`51 0004 0005 010a000001`),
		"short group":   mustHex(`51 0004 0004 01e82bd3`),
	} {
		m, err := ParseSSMPing(b)
		if err == nil {
			_, err = m.Group()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestProbeReplyRoundTrip(t *testing.T) {
	p := Probe{ID: 0xdeadbeef, Seq: 42, Sent: 1700000000123456789, Group: netip.MustParseAddr("239.1.2.3")}
	b := MarshalProbe(p)
	// magic, id, seq, sent, group
	want := mustHex(`4f565031 deadbeef 000000000000002a 17979cfe3d85cd15 ef010203`)
	if !bytes.Equal(b, want) {
		t.Fatalf("probe bytes %x\nwant        %x", b, want)
	}
	got, err := ParseProbe(b)
	if err != nil || got != p {
		t.Fatalf("%+v %v", got, err)
	}
	r := Reply{Probe: p, TTL: 31, Name: "rcv1"}
	rb := MarshalReply(r)
	if string(rb[:4]) != "OVR1" || rb[28] != 31 || rb[29] != 4 || string(rb[30:]) != "rcv1" {
		t.Fatalf("reply bytes %x", rb)
	}
	gr, err := ParseReply(rb)
	if err != nil || gr != r {
		t.Fatalf("%+v %v", gr, err)
	}
	if _, err := ParseReply(rb[:31]); err == nil {
		t.Error("truncated name accepted")
	}
	if _, err := ParseProbe(rb); err == nil {
		t.Error("reply parsed as probe")
	}
	long := MarshalReply(Reply{Name: strings.Repeat("x", 300)})
	if gr, _ := ParseReply(long); len(gr.Name) != 255 {
		t.Errorf("long name kept %d bytes", len(gr.Name))
	}
}

func FuzzParse(f *testing.F) {
	f.Add(ssmpingQuery)
	f.Add(asmpingQuery)
	f.Add(MarshalProbe(Probe{ID: 1, Seq: 2, Group: netip.MustParseAddr("239.1.1.1")}))
	f.Add(MarshalReply(Reply{Name: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseSSMPing(b); err == nil {
			m.Group()
			if !bytes.Equal(m.Marshal(), b) {
				t.Fatalf("ssmping round trip: %x -> %x", b, m.Marshal())
			}
		}
		if p, err := ParseProbe(b); err == nil {
			if !bytes.Equal(MarshalProbe(p), b[:probeLen]) {
				t.Fatal("probe round trip")
			}
		}
		if r, err := ParseReply(b); err == nil {
			if !bytes.Equal(MarshalReply(r), b[:probeLen+2+len(r.Name)]) {
				t.Fatal("reply round trip")
			}
		}
	})
}
