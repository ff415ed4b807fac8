package addr

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestClassifyRegistry(t *testing.T) {
	// Every block of the IANA registry (RFC 5771 section 3, RFC 2365, RFC 3180,
	// RFC 4607, RFC 6034), probed at both ends and in the middle.
	cases := []struct {
		g        string
		block    string
		scope    Scope
		reserved bool
	}{
		{"224.0.0.0", "Local Network Control Block", ScopeLinkLocal, false},
		{"224.0.0.255", "Local Network Control Block", ScopeLinkLocal, false},
		{"224.0.1.0", "Internetwork Control Block", ScopeGlobal, false},
		{"224.0.1.255", "Internetwork Control Block", ScopeGlobal, false},
		{"224.0.2.0", "AD-HOC Block I", ScopeGlobal, false},
		{"224.0.255.255", "AD-HOC Block I", ScopeGlobal, false},
		{"224.1.0.0", "Reserved", ScopeGlobal, true},
		{"224.1.255.255", "Reserved", ScopeGlobal, true},
		{"224.2.0.0", "SDP/SAP Block", ScopeGlobal, false},
		{"224.2.255.255", "SDP/SAP Block", ScopeGlobal, false},
		{"224.3.0.0", "AD-HOC Block II", ScopeGlobal, false},
		{"224.4.255.255", "AD-HOC Block II", ScopeGlobal, false},
		{"224.5.0.0", "Reserved", ScopeGlobal, true},
		{"224.251.255.255", "Reserved", ScopeGlobal, true},
		{"224.252.0.0", "DIS Transient Groups", ScopeGlobal, false},
		{"224.255.255.255", "DIS Transient Groups", ScopeGlobal, false},
		{"225.0.0.0", "Reserved", ScopeGlobal, true},
		{"227.1.2.3", "Reserved", ScopeGlobal, true},
		{"231.255.255.255", "Reserved", ScopeGlobal, true},
		{"232.0.0.0", "Source-Specific Multicast Block", ScopeGlobal, false},
		{"232.255.255.255", "Source-Specific Multicast Block", ScopeGlobal, false},
		{"233.0.0.0", "GLOP Block", ScopeGlobal, false},
		{"233.251.255.255", "GLOP Block", ScopeGlobal, false},
		{"233.252.0.0", "MCAST-TEST-NET (documentation)", ScopeGlobal, false},
		{"233.252.1.0", "AD-HOC Block III", ScopeGlobal, false},
		{"233.255.255.255", "AD-HOC Block III", ScopeGlobal, false},
		{"234.0.0.0", "Unicast-Prefix-based Block", ScopeGlobal, false},
		{"234.255.255.255", "Unicast-Prefix-based Block", ScopeGlobal, false},
		{"235.0.0.0", "Reserved", ScopeGlobal, true},
		{"237.0.0.0", "Reserved", ScopeGlobal, true},
		{"238.255.255.255", "Reserved", ScopeGlobal, true},
		{"239.0.0.0", "Administratively Scoped Block", ScopeAdmin, false},
		{"239.191.255.255", "Administratively Scoped Block", ScopeAdmin, false},
		{"239.192.0.0", "Administratively Scoped Block", ScopeOrg, false},
		{"239.195.255.255", "Administratively Scoped Block", ScopeOrg, false},
		{"239.196.0.0", "Administratively Scoped Block", ScopeAdmin, false},
		{"239.255.0.0", "Administratively Scoped Block", ScopeLocal, false},
		{"239.255.255.255", "Administratively Scoped Block", ScopeLocal, false},
	}
	for _, c := range cases {
		in, err := Classify(netip.MustParseAddr(c.g))
		if err != nil {
			t.Fatalf("%s: %v", c.g, err)
		}
		if in.Block != c.block || in.Scope != c.scope || in.Reserved != c.reserved {
			t.Errorf("%s: got block %q scope %s reserved %v, want %q %s %v", c.g, in.Block, in.Scope, in.Reserved, c.block, c.scope, c.reserved)
		}
		if in.SSM != strings.HasPrefix(c.g, "232.") {
			t.Errorf("%s: SSM = %v", c.g, in.SSM)
		}
	}
	for _, bad := range []string{"223.255.255.255", "240.0.0.0", "10.0.0.1", "::1", "ff02::1"} {
		if _, err := Classify(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("%s: accepted as IPv4 multicast", bad)
		}
	}
}

func TestWellKnownAndExtras(t *testing.T) {
	in, _ := Classify(netip.MustParseAddr("224.0.0.5"))
	if in.Name != "OSPF AllSPFRouters" || in.MAC != "01:00:5e:00:00:05" {
		t.Errorf("224.0.0.5: %+v", in)
	}
	in, _ = Classify(netip.MustParseAddr("224.0.0.22"))
	if !strings.Contains(in.Name, "IGMPv3") || in.MAC != "01:00:5e:00:00:16" {
		t.Errorf("224.0.0.22: %+v", in)
	}
	in, _ = Classify(netip.MustParseAddr("233.252.1.1"))
	if in.GlopAS != 0 {
		t.Errorf("AD-HOC III group given GLOP AS %d", in.GlopAS)
	}
	in, _ = Classify(netip.MustParseAddr("233.11.128.7"))
	if in.GlopAS != 11*256+128 {
		t.Errorf("GLOP AS %d, want 2944", in.GlopAS)
	}
	in, _ = Classify(netip.MustParseAddr("234.192.0.2"))
	if in.UBMPrefix != "192.0.2.0/24" {
		t.Errorf("UBM owner %q", in.UBMPrefix)
	}
	in, _ = Classify(netip.MustParseAddr("239.1.1.1"))
	if len(in.SharingMAC) != 31 || in.SharingMAC[0] != "224.1.1.1" || in.MAC != "01:00:5e:01:01:01" {
		t.Errorf("239.1.1.1 sharing %v mac %s", in.SharingMAC, in.MAC)
	}
}

// naiveMAC is the RFC 1112 mapping written the other way: keep the low 23
// bits of the 32-bit address.
func naiveMAC(g netip.Addr) uint64 {
	b := g.As4()
	return 0x01005e000000 | uint64(binary.BigEndian.Uint32(b[:])&0x7fffff)
}

func macBits(m [6]byte) uint64 {
	var v uint64
	for _, x := range m {
		v = v<<8 | uint64(x)
	}
	return v
}

func TestMACProperty(t *testing.T) {
	// Every group maps to a MAC that exactly 32 groups share, and the set
	// SharingMAC returns is exactly the set of groups with that MAC.
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		v := 0xe0000000 | r.Uint32()&0x0fffffff
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		g := netip.AddrFrom4(b)
		m := macBits(MAC(g))
		if m != naiveMAC(g) {
			t.Fatalf("%s: MAC %012x, want %012x", g, m, naiveMAC(g))
		}
		share := SharingMAC(g)
		set := map[netip.Addr]bool{}
		for _, o := range share {
			if macBits(MAC(o)) != m || !o.IsMulticast() {
				t.Fatalf("%s: %s in sharing set has MAC %012x", g, o, macBits(MAC(o)))
			}
			set[o] = true
		}
		if len(set) != 32 || !set[g] {
			t.Fatalf("%s: sharing set has %d distinct groups (contains itself: %v)", g, len(set), set[g])
		}
		// A group differing in any of the low 23 bits has another MAC.
		o := netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3] ^ byte(1<<r.IntN(8))})
		if set[o] {
			t.Fatalf("%s and %s differ in the low 23 bits but share a MAC", g, o)
		}
	}
}

func TestCollisionPairs(t *testing.T) {
	pairs := [][2]string{
		{"239.0.0.1", "239.128.0.1"},
		{"224.0.0.1", "239.0.0.1"},
		{"224.0.0.5", "225.128.0.5"},
		{"232.1.2.3", "233.129.2.3"},
	}
	for _, p := range pairs {
		plan, err := ParsePlan("plan", p[0]+"\n"+p[1]+"\n")
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, f := range Check(plan) {
			if strings.Contains(f.Problem, "share MAC") {
				found = len(f.Groups) == 2 && f.Groups[0] == p[0] && f.Groups[1] == p[1] && f.Lines[0] == 1 && f.Lines[1] == 2
			}
		}
		if !found {
			t.Errorf("%v: collision not reported: %+v", p, Check(plan))
		}
	}
	plan, _ := ParsePlan("plan", "239.1.1.1 239.1.1.2\n239.2.1.1")
	if f := Check(plan); len(f) != 0 {
		t.Errorf("distinct MACs reported: %+v", f)
	}
}

func TestCheckBitingRanges(t *testing.T) {
	plan, err := ParsePlan("plan", `
232.1.1.1             # SSM, no source
10.0.0.1,232.1.1.2    # SSM channel: fine
224.0.0.251           # link-local
225.1.1.1             # reserved
239.10.0.0+3          # fine
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 8 {
		t.Fatalf("parsed %d entries, want 8", len(plan))
	}
	got := map[int]string{}
	for _, f := range Check(plan) {
		got[f.Lines[0]] += f.Level + ":" + f.Problem + ";"
	}
	if !strings.Contains(got[2], "FAIL:in the SSM range") || got[3] != "" || !strings.Contains(got[4], "link-local") ||
		!strings.Contains(got[5], "reserved") || got[6] != "" || len(got) != 3 {
		t.Errorf("findings by line: %v", got)
	}
}

func TestParsePlanErrors(t *testing.T) {
	for in, want := range map[string]string{
		"239.1.1.1\nfoo\n":    "plan.txt:2: \"foo\" is not an IPv4 address",
		"239.1.1.1+70000":     "plan.txt:1: \"239.1.1.1+70000\": want G+N",
		"239.255.255.255+2":   "plan.txt:1: \"239.255.255.255+2\": 240.0.0.0 is not multicast",
		"239.1.1.1,232.1.1.1": "plan.txt:1: \"239.1.1.1\": source must be",
	} {
		_, err := ParsePlan("plan.txt", in)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: error %v, want prefix %q", in, err, want)
		}
	}
}

func TestGlopAndUBM(t *testing.T) {
	p, err := Glop(5662)
	if err != nil || p.String() != "233.22.30.0/24" {
		t.Errorf("Glop(5662) = %v, %v", p, err)
	}
	as, err := GlopAS(netip.MustParseAddr("233.22.30.77"))
	if err != nil || as != 5662 {
		t.Errorf("GlopAS = %d, %v", as, err)
	}
	for as := uint32(1); as < 64512; as += 97 {
		p, err := Glop(as)
		if err != nil {
			t.Fatal(err)
		}
		back, err := GlopAS(p.Addr())
		if err != nil || back != as {
			t.Fatalf("AS %d -> %s -> %d, %v", as, p, back, err)
		}
	}
	for _, as := range []uint32{0, 64512, 65535, 65536, 4200000000} {
		if _, err := Glop(as); err == nil {
			t.Errorf("Glop(%d) accepted", as)
		}
	}
	if _, err := GlopAS(netip.MustParseAddr("233.252.0.1")); err == nil {
		t.Error("GlopAS accepted AD-HOC III")
	}
	for in, want := range map[string]string{"192.0.2.0/24": "234.192.0.2/32", "198.51.0.0/16": "234.198.51.0/24", "10.0.0.0/8": "234.10.0.0/16", "203.0.113.77/24": "234.203.0.113/32"} {
		got, err := UBM(netip.MustParsePrefix(in))
		if err != nil || got.String() != want {
			t.Errorf("UBM(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"192.0.2.0/25", "239.0.0.0/8", "2001:db8::/32"} {
		if _, err := UBM(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("UBM(%s) accepted", bad)
		}
	}
}

func FuzzParsePlan(f *testing.F) {
	f.Add("239.1.1.1\n10.0.0.1,232.1.1.1 (10.0.0.2,232.1.1.2) # c\n239.0.0.0+10")
	f.Fuzz(func(t *testing.T, s string) {
		es, err := ParsePlan("f", s)
		if err != nil {
			return
		}
		for _, e := range es {
			if !e.Group.Is4() {
				t.Fatalf("non-IPv4 group %v", e.Group)
			}
		}
		Check(es)
	})
}
