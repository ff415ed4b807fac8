package mirror

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func pkt(proto uint8, src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 28)
	b[0] = 0x45
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	return b
}

func mustFilter(t *testing.T, rules ...string) Filter {
	t.Helper()
	var rs []Rule
	for _, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	f, err := NewFilter(rs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func classify(t *testing.T, f Filter, b []byte) bool {
	t.Helper()
	p, err := ParseIPv4(b)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := f.Classify(p)
	return m
}

// Seed 004's wish: mirror only the packets to 8.8.8.8 (here 198.51.100.8).
func TestOnlyToOneHost(t *testing.T) {
	f := mustFilter(t, "accept dst 198.51.100.8")
	if !classify(t, f, pkt(17, "10.0.0.1", "198.51.100.8", 5000, 53)) || classify(t, f, pkt(17, "10.0.0.1", "198.51.100.9", 5000, 53)) {
		t.Fatal("dst rule")
	}
}

// Lowest number first, first match wins, no match and no rules mirror nothing.
func TestOrderAndDefaults(t *testing.T) {
	f := mustFilter(t, "20 accept proto udp", "10 reject proto udp dport 53", "30 accept proto icmp")
	cases := []struct {
		b    []byte
		want bool
	}{
		{pkt(17, "10.0.0.1", "10.0.0.2", 1000, 53), false}, // rule 10 rejects before 20 accepts
		{pkt(17, "10.0.0.1", "10.0.0.2", 1000, 54), true},
		{pkt(1, "10.0.0.1", "10.0.0.2", 0, 0), true},
		{pkt(6, "10.0.0.1", "10.0.0.2", 1000, 80), false}, // no rule matches
	}
	for i, c := range cases {
		if got := classify(t, f, c.b); got != c.want {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
	if classify(t, mustFilter(t), pkt(17, "10.0.0.1", "10.0.0.2", 1, 2)) {
		t.Error("an empty filter mirrored")
	}
}

// By multicast group and (S,G), which no anchor offers.
func TestGroupAndSG(t *testing.T) {
	f := mustFilter(t, "accept sg 10.0.1.10,239.1.1.1")
	if !classify(t, f, pkt(17, "10.0.1.10", "239.1.1.1", 1, 2)) || classify(t, f, pkt(17, "10.0.1.11", "239.1.1.1", 1, 2)) ||
		classify(t, f, pkt(17, "10.0.1.10", "239.1.1.2", 1, 2)) {
		t.Fatal("sg")
	}
	g := mustFilter(t, "accept group 239.1.1.0/24")
	if !classify(t, g, pkt(17, "10.9.9.9", "239.1.1.77", 1, 2)) {
		t.Fatal("group prefix")
	}
}

// A later fragment has no ports: port rules skip it.
func TestFragmentsHaveNoPorts(t *testing.T) {
	f := mustFilter(t, "accept proto udp dport 53")
	b := pkt(17, "10.0.0.1", "10.0.0.2", 1000, 53)
	binary.BigEndian.PutUint16(b[6:], 100) // offset 800
	if classify(t, f, b) {
		t.Fatal("a non-first fragment matched a port rule")
	}
}

func TestBadRules(t *testing.T) {
	for _, c := range []struct{ rule, want string }{
		{"mirror everything", "accept or reject"},
		{"accept dport 53", "ports need proto"},
		{"accept proto udp dport 60-50", "N-M"},
		{"accept group 10.0.0.1", "not multicast"},
		{"accept src 10.0.0.0/33", "not an IPv4"},
		{"accept color red", "unknown field"},
		{"accept proto", "needs a value"},
	} {
		if _, err := ParseRule(c.rule); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.rule, err, c.want)
		}
	}
	r, _ := ParseRule("5 accept")
	if _, err := NewFilter([]Rule{r, r}); err == nil {
		t.Error("a number used twice was accepted")
	}
}

// A thousand rules load and still select correctly.
func TestThousandRules(t *testing.T) {
	var rules []string
	for i := range 999 {
		rules = append(rules, "reject proto udp dport "+strconv.Itoa(10000+i))
	}
	rules = append(rules, "accept proto udp")
	f := mustFilter(t, rules...)
	if classify(t, f, pkt(17, "10.0.0.1", "10.0.0.2", 1, 10500)) || !classify(t, f, pkt(17, "10.0.0.1", "10.0.0.2", 1, 20000)) {
		t.Fatal("1,000 rules")
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"7 accept proto 17 src 10.0.0.0/8 dst 239.1.1.1/32 sport 1-2 dport 53-53", "reject"} {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != s {
			t.Errorf("%q -> %q", s, r.String())
		}
	}
}

// FuzzClassify: rules and packets from bytes; the classifier never
// panics and agrees with a plain reading of the semantics.
func FuzzClassify(f *testing.F) {
	f.Add("accept proto udp dport 53", []byte(pkt(17, "10.0.0.1", "10.0.0.2", 1, 53)))
	f.Add("reject src 10.0.0.0/8", []byte(pkt(6, "10.0.0.1", "10.0.0.2", 1, 53)))
	f.Fuzz(func(t *testing.T, rule string, b []byte) {
		r, err := ParseRule(rule)
		if err != nil {
			return
		}
		if _, err := ParseRule(r.String()); err != nil {
			t.Fatalf("%q re-parsed: %v", r.String(), err)
		}
		p, err := ParseIPv4(b)
		if err != nil {
			return
		}
		fl, _ := NewFilter([]Rule{r})
		m, i := fl.Classify(p)
		match := (r.Proto == 0 || r.Proto == p.Proto) && (!r.Src.IsValid() || r.Src.Contains(p.Src)) &&
			(!r.Dst.IsValid() || r.Dst.Contains(p.Dst)) &&
			(r.SrcPorts.Any() && r.DstPorts.Any() || p.HasPorts && r.SrcPorts.has(p.SrcPort) && r.DstPorts.has(p.DstPort))
		if (i == 0) != match || m != (match && r.Action == Accept) {
			t.Fatalf("rule %v packet %+v: classify %v %d, want match %v", r, p, m, i, match)
		}
	})
}
