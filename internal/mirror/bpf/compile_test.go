package bpf

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"overcast/internal/mirror"
)

// load compiles and loads a filter as a tc classifier; it needs root.
func load(t *testing.T, f mirror.Filter) *ebpf.Program {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("loading eBPF needs root (these tests run the program in the kernel)")
	}
	ins, err := Compile(f, Options{Verdicts: true})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, Instructions: ins, License: "GPL"})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// frame is an Ethernet frame with an IPv4 packet.
func frame(proto uint8, src, dst netip.Addr, sport, dport uint16, ihl int, frag uint16) []byte {
	b := make([]byte, 14+ihl*4+8+18)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[6:], frag)
	ip[8], ip[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	l4 := ip[ihl*4:]
	binary.BigEndian.PutUint16(l4, sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	return b
}

// verdict runs the program on a frame in the kernel.
func verdict(t *testing.T, prog *ebpf.Program, b []byte) uint32 {
	t.Helper()
	ret, _, err := prog.Test(b)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret
}

// want is the reference classifier's answer as a verdict code.
func want(f mirror.Filter, b []byte) uint32 {
	p, err := mirror.ParseIPv4(b[14:])
	m, i := f.Classify(p)
	if err != nil || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		m, i = f.ClassifyOther()
	}
	switch {
	case i < 0:
		return 0
	case m:
		return VerdictAccept | uint32(i)
	}
	return VerdictReject | uint32(i)
}

func filter(t *testing.T, rules ...string) mirror.Filter {
	var rs []mirror.Rule
	for _, s := range rules {
		r, err := mirror.ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	f, err := mirror.NewFilter(rs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The kernel program and the reference classifier agree on random
// packets against random rule lists, 1,000 rules among them.
func TestKernelAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := []string{"10.0.0.1", "10.0.1.10", "198.51.100.8", "239.1.1.1", "239.1.1.2", "192.168.7.9"}
	pick := func() netip.Addr { return netip.MustParseAddr(addrs[rng.IntN(len(addrs))]) }
	ruleText := func() string {
		s := []string{"accept", "reject"}[rng.IntN(2)]
		proto := []string{"", " proto udp", " proto tcp", " proto icmp"}[rng.IntN(4)]
		s += proto
		if rng.IntN(2) == 0 {
			s += " src " + []string{"10.0.0.0/8", "10.0.1.10", "0.0.0.0/0", "198.51.100.0/24"}[rng.IntN(4)]
		}
		if rng.IntN(2) == 0 {
			s += " dst " + []string{"239.1.1.0/24", "198.51.100.8", "239.1.1.2", "128.0.0.0/1"}[rng.IntN(4)]
		}
		if proto == " proto udp" || proto == " proto tcp" {
			if rng.IntN(2) == 0 {
				s += " dport " + []string{"53", "1000-2000", "5001", "1-65535"}[rng.IntN(4)]
			}
			if rng.IntN(3) == 0 {
				s += " sport " + []string{"53", "40000-65535"}[rng.IntN(2)]
			}
		}
		return s
	}
	for round := range 30 {
		n := 1 + rng.IntN(8)
		if round == 29 {
			n = 1000
		}
		var rules []string
		for range n {
			rules = append(rules, ruleText())
		}
		f := filter(t, rules...)
		prog := load(t, f)
		for range 200 {
			b := frame([]uint8{1, 6, 17, 47}[rng.IntN(4)], pick(), pick(), []uint16{53, 1500, 5001, 45000}[rng.IntN(4)],
				[]uint16{53, 1500, 5001, 45000}[rng.IntN(4)], 5+rng.IntN(2)*3, []uint16{0, 0, 0, 100}[rng.IntN(4)])
			if got, w := verdict(t, prog, b), want(f, b); got != w {
				p, _ := mirror.ParseIPv4(b[14:])
				t.Fatalf("round %d (%d rules), packet %+v: kernel %#x, reference %#x", round, n, p, got, w)
			}
		}
	}
}

// Frames that are not IPv4 packets (IPv6, ARP, an IHL below 5, a header
// cut short) are decided by the first rule without match fields, in the
// kernel as in the reference.
func TestNotIPv4(t *testing.T) {
	v4 := frame(17, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 1, 2, 5, 0)
	v6 := append([]byte(nil), v4...)
	binary.BigEndian.PutUint16(v6[12:], 0x86dd)
	arp := append([]byte(nil), v4...)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	ihl3 := append([]byte(nil), v4...)
	ihl3[14] = 0x43
	cut := append([]byte(nil), v4[:14+20]...)
	cut[14] = 0x4f // IHL 15: 60 octets claimed, 20 there
	for _, rules := range [][]string{{"accept"}, {"accept proto udp"}, {"reject proto tcp", "accept"}, {"accept dst 10.0.0.2", "reject"}, {"reject", "accept"}} {
		f := filter(t, rules...)
		prog := load(t, f)
		for name, b := range map[string][]byte{"ipv4": v4, "ipv6": v6, "arp": arp, "ihl3": ihl3, "cut": cut} {
			if got, w := verdict(t, prog, b), want(f, b); got != w {
				t.Errorf("rules %q, %s frame: kernel %#x, reference %#x", rules, name, got, w)
			}
		}
	}
	if got := verdict(t, load(t, filter(t, "accept")), v6); got != VerdictAccept {
		t.Fatalf("a flow of all frames: IPv6 verdict %#x", got)
	}
}
