package e2e

import (
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"overcast/internal/packet/ip4"
	"overcast/internal/packet/pim"
)

// writeRawPcap writes IPv4 packets as a pcap with LINKTYPE_RAW (101).
func writeRawPcap(t *testing.T, path string, pkts [][]byte) {
	t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = binary.LittleEndian.AppendUint32(b, 65535)
	b = binary.LittleEndian.AppendUint32(b, 101)
	for i, p := range pkts {
		b = binary.LittleEndian.AppendUint32(b, uint32(1700000000+i))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every kind of PIM message the codec encodes decodes in tshark as that
// kind, with correct checksums and no warnings or errors.
func TestTsharkDecodesPIMCodec(t *testing.T) {
	a := netip.MustParseAddr
	src, grp, rp := a("10.1.1.10"), a("239.1.1.1"), a("10.255.0.2")
	star := pim.Source{Addr: rp, MaskLen: 32, Sparse: true, WC: true, RPT: true}
	sgrpt := pim.Source{Addr: src, MaskLen: 32, Sparse: true, RPT: true}
	inner := ip4.Header{TTL: 31, Protocol: ip4.ProtoUDP, Src: src, Dst: grp}.Marshal(
		append([]byte{0x13, 0x89, 0x13, 0x89, 0, 16, 0, 0}, []byte("overcast")...)) // UDP, no checksum
	var sets []pim.GroupSet
	for g := range 200 {
		gs := pim.GroupSet{Group: pim.GroupPrefix(netip.AddrFrom4([4]byte{232, 1, 0, byte(g)}))}
		for s := range 10 {
			gs.Joins = append(gs.Joins, pim.Source{Addr: netip.AddrFrom4([4]byte{10, 0, byte(g), byte(s + 1)}), MaskLen: 32, Sparse: true})
		}
		sets = append(sets, gs)
	}
	type msg struct {
		m        pim.Message
		dst      netip.Addr
		wantType string
	}
	msgs := []msg{
		{pim.NewHello(105, 500, 2500, false, 1, 0x12345678, []netip.Addr{a("10.1.12.9")}), pim.AllPIMRouters, "0"},
		{&pim.Hello{Holdtime: 0}, pim.AllPIMRouters, "0"},
		{&pim.JoinPrune{Upstream: a("10.1.12.2"), Holdtime: 210, Groups: []pim.GroupSet{{Group: pim.GroupPrefix(grp), Joins: []pim.Source{star}, Prunes: []pim.Source{sgrpt}}}}, pim.AllPIMRouters, "3"},
		{&pim.Register{Packet: inner}, rp, "1"},
		{&pim.Register{Null: true, Packet: pim.NullRegisterPacket(src, grp)}, rp, "1"},
		{&pim.RegisterStop{Group: pim.GroupPrefix(grp), Source: src}, a("10.1.1.1"), "2"},
		{&pim.Assert{Group: pim.GroupPrefix(grp), Source: src, Preference: 110, Metric: 20}, pim.AllPIMRouters, "5"},
		{&pim.Assert{Group: pim.GroupPrefix(grp), Source: netip.IPv4Unspecified(), RPT: true, Preference: pim.AssertInfinity, Metric: 0xffffffff}, pim.AllPIMRouters, "5"},
		{&pim.Bootstrap{FragmentTag: 1, HashMaskLen: 30, Priority: 64, BSR: rp, Groups: []pim.BSRGroup{{Group: pim.Group{Prefix: netip.MustParsePrefix("224.0.0.0/4")}, RPCount: 1,
			RPs: []pim.BSRRP{{Addr: rp, Holdtime: 150, Priority: 192}}}}}, pim.AllPIMRouters, "4"},
		{&pim.CRPAdv{Priority: 192, Holdtime: 150, RP: rp, Groups: []pim.Group{{Prefix: netip.MustParsePrefix("239.0.0.0/8")}}}, a("10.255.0.9"), "8"},
	}
	split := pim.Split(a("10.1.12.2"), 210, sets, 1480)
	for _, m := range split {
		msgs = append(msgs, msg{m, pim.AllPIMRouters, "3"})
	}
	var pkts [][]byte
	var want []string
	for _, m := range msgs {
		ttl := uint8(1)
		if !m.dst.IsMulticast() {
			ttl = 64
		}
		p := ip4.Header{TOS: 0xc0, TTL: ttl, Protocol: ip4.ProtoPIM, Src: a("10.1.12.1"), Dst: m.dst}.Marshal(m.m.Marshal())
		if len(p) > 1500 {
			t.Fatalf("%T of %d bytes", m.m, len(p))
		}
		pkts = append(pkts, p)
		want = append(want, m.wantType)
	}
	pcap := filepath.Join(t.TempDir(), "pim.pcap")
	writeRawPcap(t, pcap, pkts)
	out, err := exec.Command("tshark", "-Q", "-r", pcap, "-T", "fields", "-e", "pim.type", "-e", "pim.cksum.status", "-e", "pim.numgroups").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("tshark decoded %d packets, want %d:\n%s", len(lines), len(want), out)
	}
	groups := 0
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 2 || f[0] != want[i] || f[1] != "1" { // 1: checksum good (as for FRR's packets)
			t.Errorf("packet %d (%T): tshark fields %q, want type %s with a good checksum", i, msgs[i].m, l, want[i])
		}
		if i >= len(msgs)-len(split) && len(f) > 2 {
			var n int
			for _, c := range f[2] {
				n = n*10 + int(c-'0')
			}
			groups += n
		}
	}
	if groups != 200 {
		t.Errorf("tshark counts %d groups over the split join/prunes, want 200", groups)
	}
	expert, err := exec.Command("tshark", "-Q", "-r", pcap, "-z", "expert,note").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, expert)
	}
	if s := string(expert); strings.Contains(s, "Malformed") || strings.Contains(s, "Warns") || strings.Contains(s, "Errors") {
		t.Fatalf("tshark reports problems:\n%s", s)
	}
	t.Logf("%d PIM packets decoded cleanly, %d of them join/prunes split from 2,000 (S,G) joins", len(pkts), len(split))
}
