package linuxmr

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"

	"overcast/internal/dataplane"
)

// As printed by kernel 6.18 in the demo lab: (10.0.1.10, 239.1.1.1) in on
// vif 0, out on vif 1; a pruned (10.0.1.11, 232.1.1.1) entry.
const mrCache = `Group    Origin   Iif     Pkts    Bytes    Wrong Oifs
010101EF 0A01000A 0         1000    92000        0  1:1
010101E8 0B01000A 0          500    46000        3
`

// parse collects ParseMRCache's routes in a map.
func parse(raw string) (map[dataplane.SG]dataplane.Counters, error) {
	got := map[dataplane.SG]dataplane.Counters{}
	err := ParseMRCache([]byte(raw), func(k dataplane.SG, c dataplane.Counters) { got[k] = c })
	return got, err
}

func TestParseMRCache(t *testing.T) {
	got, err := parse(mrCache)
	if err != nil {
		t.Fatal(err)
	}
	k1 := dataplane.SG{Source: netip.MustParseAddr("10.0.1.10"), Group: netip.MustParseAddr("239.1.1.1")}
	k2 := dataplane.SG{Source: netip.MustParseAddr("10.0.1.11"), Group: netip.MustParseAddr("232.1.1.1")}
	if len(got) != 2 || got[k1] != (dataplane.Counters{Packets: 1000, Bytes: 92000}) || got[k2] != (dataplane.Counters{Packets: 500, Bytes: 46000, WrongIf: 3}) {
		t.Fatalf("%+v", got)
	}
	if _, err := parse("ZZZ 0A01000A 0 1 2 3\n"); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestReadMRCacheInPieces: lines split across reads, and reads of one
// byte, give what one parse of the whole file gives.
func TestReadMRCacheInPieces(t *testing.T) {
	var big strings.Builder
	big.WriteString("Group    Origin   Iif     Pkts    Bytes    Wrong Oifs\n")
	for i := range 300 {
		fmt.Fprintf(&big, "%08X 0A01000A 0 %d %d 0  1:1\n", 0x000014E8|i<<16, i, i*100)
	}
	want, err := parse(big.String())
	if err != nil || len(want) != 300 {
		t.Fatalf("%d routes, %v", len(want), err)
	}
	for _, r := range []io.Reader{strings.NewReader(big.String()), iotest.OneByteReader(strings.NewReader(big.String())), iotest.HalfReader(strings.NewReader(big.String()))} {
		got := map[dataplane.SG]dataplane.Counters{}
		if err := readMRCache(r, make([]byte, 100), func(k dataplane.SG, c dataplane.Counters) { got[k] = c }); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%d routes read in pieces, %d whole", len(got), len(want))
		}
	}
	err = readMRCache(strings.NewReader(big.String()), make([]byte, 20), func(dataplane.SG, dataplane.Counters) {})
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("line longer than the buffer: %v", err)
	}
}

func TestMfcctlLayout(t *testing.T) {
	b := mfcctl(dataplane.SG{Source: netip.MustParseAddr("10.0.1.10"), Group: netip.MustParseAddr("239.1.1.1")}, 2, []int{0, 31})
	if len(b) != mfcctlSize || b[0] != 10 || b[7] != 1 || b[8] != 2 || b[9] != 0 || b[10] != 1 || b[10+31] != 1 || b[11] != 0 {
		t.Fatalf("mfcctl % x", b)
	}
}

// FuzzParseMRCache: any input either fails cleanly or yields counters, and
// a line printed the kernel's way reads back to the same numbers.
func FuzzParseMRCache(f *testing.F) {
	f.Add([]byte(mrCache), uint32(0x010101EF), uint64(7), uint64(99))
	f.Add([]byte("Group Origin\n\t\n 1 2 3 4 5 6 7 8\n"), uint32(0), uint64(0), uint64(1<<63))
	f.Fuzz(func(t *testing.T, raw []byte, g uint32, pk, by uint64) {
		parse(string(raw))
		ParseMRCacheRoutes(raw, func(k dataplane.SG, iif int, oifs []int) {
			for _, o := range oifs {
				if o < 0 || o >= maxVIFs {
					t.Fatalf("output VIF %d out of range", o)
				}
			}
		})
		var routes int
		if err := ParseMRCacheRoutes([]byte(fmt.Sprintf("%08X 0A01000A 3 %d %d 0 1:1 4:1\n", g, pk%1e18, by%1e18)), func(k dataplane.SG, iif int, oifs []int) {
			if iif != 3 || fmt.Sprint(oifs) != "[1 4]" || k.Group != wordAddr(g) {
				t.Fatalf("route read back as %v %d %v", k, iif, oifs)
			}
			routes++
		}); err != nil || routes != 1 {
			t.Fatalf("route line: %v, %d routes", err, routes)
		}
		line := fmt.Sprintf("%08X 0A01000A 0 %d %d 0 1:1\n", g, pk, by)
		got, err := parse(line)
		if pk >= 1e19 || by >= 1e19 {
			return // longer than any counter we accept
		}
		if err != nil || len(got) != 1 {
			t.Fatalf("%q: %v %v", line, got, err)
		}
		for _, c := range got {
			if c.Packets != pk || c.Bytes != by {
				t.Fatalf("%q read back as %+v", line, c)
			}
		}
	})
}

func TestParseMRCacheRoutes(t *testing.T) {
	type row struct {
		k    dataplane.SG
		iif  int
		oifs string
	}
	var got []row
	err := ParseMRCacheRoutes([]byte(mrCache), func(k dataplane.SG, iif int, oifs []int) {
		got = append(got, row{k, iif, fmt.Sprint(oifs)})
	})
	if err != nil || len(got) != 2 || got[0].iif != 0 || got[0].oifs != "[1]" || got[1].oifs != "[]" ||
		got[0].k.Group != netip.MustParseAddr("239.1.1.1") || got[1].k.Source != netip.MustParseAddr("10.0.1.11") {
		t.Fatalf("%v %+v", err, got)
	}
	if err := ParseMRCacheRoutes([]byte("010101EF 0A01000A 0 1 2 3 99:1\n"), func(dataplane.SG, int, []int) {}); err == nil {
		t.Fatal("VIF 99 accepted")
	}
}

// A second router is told who holds the routing socket: the holders of raw
// IGMP sockets, found through /proc (here: this test, once it opens one).
func TestIGMPSocketHolders(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_IGMP)
	if err != nil {
		t.Fatalf("raw IGMP socket (the test runs as root, as the suite does): %v", err)
	}
	me := fmt.Sprintf("pid %d (", os.Getpid())
	found := slices.ContainsFunc(IGMPSocketHolders(), func(h string) bool { return strings.HasPrefix(h, me) })
	unix.Close(fd)
	if !found {
		t.Fatalf("holders %v do not name this process (%s...)", IGMPSocketHolders(), me)
	}
	if slices.ContainsFunc(IGMPSocketHolders(), func(h string) bool { return strings.HasPrefix(h, me) }) {
		t.Fatalf("still named after closing its socket: %v", IGMPSocketHolders())
	}
}

// /proc/net/ip_mr_vif as this kernel prints it: a VIF bound by index has
// its ifindex as Local; the register VIF has flag 4.
const mrVIF = `Interface      BytesIn  PktsIn  BytesOut PktsOut Flags Local    Remote
 0 d0                 0       0         0       0 00008 00000002 00000000
 1 d1               840      10      1680      20 00008 00000004 00000000
 3 pimreg             0       0         0       0 00004 00000000 00000000
`

func TestParseVIFs(t *testing.T) {
	vs, err := ParseVIFs([]byte(mrVIF))
	if err != nil {
		t.Fatal(err)
	}
	want := []VIF{{Index: 0, IfIndex: 2, Name: "d0"}, {Index: 1, IfIndex: 4, Name: "d1"}, {Index: 3, Name: "pimreg", Register: true}}
	if fmt.Sprint(vs) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", vs, want)
	}
	for _, bad := range []string{" 0 d0 0 0 0 0 00008 00000002", "40 d0 0 0 0 0 00008 00000002 00000000", " 0 d0 0 0 0 0 0000g 00000002 00000000"} {
		if _, err := ParseVIFs([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseVIFs(f *testing.F) {
	f.Add([]byte(mrVIF))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := ParseVIFs(b)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Index < 0 || v.Index >= MaxVIFs {
				t.Fatalf("VIF %d out of range", v.Index)
			}
		}
	})
}
