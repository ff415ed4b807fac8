package doctor

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"overcast/internal/dataplane/linuxmr"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Gather reads the facts about this host (its network namespace) that
// Diagnose judges. It does not listen on the wire; see Listen.
func Gather(o Options) Facts {
	f := Facts{Opts: o}
	f.ProcIGMP = exists("/proc/net/igmp")
	f.ProcMroute = exists("/proc/net/ip_mr_vif")
	f.KernelConfig = kernelConfig()
	f.AllRPFilter = sysctl("net/ipv4/conf/all/rp_filter")
	f.AllForceIGMP = sysctl("net/ipv4/conf/all/force_igmp_version")
	f.AllMcForward = sysctl("net/ipv4/conf/all/mc_forwarding")
	f.MaxMembership = sysctl("net/ipv4/igmp_max_memberships")
	f.MaxMSF = sysctl("net/ipv4/igmp_max_msf")

	inUse, members := parseProcIGMP(readFile("/proc/net/igmp"))
	f.Memberships = members
	links, _ := netlink.LinkList()
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		i := Iface{Name: a.Name, Up: a.Flags&net.FlagUp != 0, Multicast: a.Flags&net.FlagMulticast != 0, Loopback: a.Flags&net.FlagLoopback != 0,
			RPFilter: sysctl("net/ipv4/conf/" + a.Name + "/rp_filter"), ForceIGMP: sysctl("net/ipv4/conf/" + a.Name + "/force_igmp_version"),
			McForwarding: sysctl("net/ipv4/conf/" + a.Name + "/mc_forwarding"), IGMPInUse: inUse[a.Name], MTU: a.MTU, TUN: l.Type() == "tuntap"}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, ad := range addrs {
			i.Addrs = append(i.Addrs, ad.IPNet.String())
		}
		f.Ifaces = append(f.Ifaces, i)
	}

	f.RouteProbe = o.Group
	if !f.RouteProbe.IsValid() {
		f.RouteProbe = netip.MustParseAddr("239.1.1.1")
	}
	f.GroupRoute, f.GroupRouteErr = routeTo(f.RouteProbe, names)
	if o.Source.IsValid() {
		f.SourceRoute, f.SourceRouteEr = routeTo(o.Source, names)
	}

	f.OverlayPaths = overlayPaths(f.Ifaces, o.Peers, names)

	if vif := readFile("/proc/net/ip_mr_vif"); vif != "" {
		lines := strings.Split(strings.TrimSpace(vif), "\n")
		f.VIFs = max(0, len(lines)-1)
		for _, l := range lines[1:] {
			if fs := strings.Fields(l); len(fs) > 1 {
				f.VIFNames = append(f.VIFNames, fs[1])
			}
		}
	}
	if f.AllMcForward == 1 {
		f.MrouteHolders = linuxmr.IGMPSocketHolders()
	}

	if _, err := exec.LookPath("nft"); err == nil {
		if out, err := exec.Command("nft", "-a", "list", "ruleset").Output(); err == nil {
			r, n := ParseNFT(string(out))
			f.Firewall, f.FirewallNotes = append(f.Firewall, r...), append(f.FirewallNotes, n...)
		}
	}
	if _, err := exec.LookPath("iptables-save"); err == nil {
		if out, err := exec.Command("iptables-save").Output(); err == nil {
			r, n := ParseIPTables(string(out))
			f.Firewall, f.FirewallNotes = append(f.Firewall, r...), append(f.FirewallNotes, n...)
		}
	}
	return f
}

// overlayPaths finds each overlay device (a TUN device with a /32, the
// node's underlay address) and the MTU its datagrams meet: toward each
// peer asked about, else on the interface holding the same address.
func overlayPaths(ifs []Iface, peers []netip.Addr, names map[int]string) []OverlayPath {
	mtu := map[string]int{}
	for _, i := range ifs {
		mtu[i.Name] = i.MTU
	}
	var out []OverlayPath
	for _, d := range ifs {
		if !d.TUN || len(d.Addrs) == 0 || !strings.HasSuffix(d.Addrs[0], "/32") {
			continue
		}
		own := strings.TrimSuffix(d.Addrs[0], "/32")
		if len(peers) == 0 {
			for _, i := range ifs {
				if i.Name != d.Name && slices.ContainsFunc(i.Addrs, func(a string) bool { return strings.HasPrefix(a, own+"/") }) {
					out = append(out, OverlayPath{Device: d.Name, DeviceMTU: d.MTU, Iface: i.Name, MTU: i.MTU})
				}
			}
			continue
		}
		for _, p := range peers {
			op := OverlayPath{Device: d.Name, DeviceMTU: d.MTU, Peer: p.String()}
			rs, err := netlink.RouteGet(p.AsSlice())
			switch {
			case err != nil:
				op.Err = err.Error()
			case len(rs) == 0:
				op.Err = "no route"
			default:
				op.Iface = names[rs[0].LinkIndex]
				op.MTU = mtu[op.Iface]
				if rs[0].MTU > 0 {
					op.MTU = rs[0].MTU
				}
			}
			out = append(out, op)
		}
	}
	return out
}

func routeTo(a netip.Addr, names map[int]string) (*Route, string) {
	rs, err := netlink.RouteGet(a.AsSlice())
	if err != nil {
		return nil, err.Error()
	}
	if len(rs) == 0 {
		return nil, "no route"
	}
	r := &Route{Iface: names[rs[0].LinkIndex]}
	if rs[0].Gw != nil {
		r.Gateway = rs[0].Gw.String()
	}
	if rs[0].Src != nil {
		r.Src = rs[0].Src.String()
	}
	return r, ""
}

// parseProcIGMP reads /proc/net/igmp: the IGMP version each device reports
// with, and the groups joined on it. Groups are little-endian hex.
//
//	Idx	Device    : Count Querier	Group    Users Timer	Reporter
//	2	eth0      :     2      V3
//					010101EF     1 0:00000000		0
func parseProcIGMP(s string) (map[string]string, []Membership) {
	inUse := map[string]string{}
	var ms []Membership
	dev := ""
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Idx") {
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			f := strings.Fields(strings.Replace(line, ":", " : ", 1))
			if len(f) >= 5 && f[2] == ":" {
				dev = f[1]
				inUse[dev] = f[4]
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f[0]) != 8 {
			continue
		}
		b, err := hex.DecodeString(f[0])
		if err != nil {
			continue
		}
		var a [4]byte
		binary.LittleEndian.PutUint32(a[:], binary.BigEndian.Uint32(b))
		users, _ := strconv.Atoi(f[1])
		ms = append(ms, Membership{Iface: dev, Group: netip.AddrFrom4(a), Users: users})
	}
	return inUse, ms
}

func kernelConfig() map[string]string {
	var r io.Reader
	if fh, err := os.Open("/proc/config.gz"); err == nil {
		defer fh.Close()
		if z, err := gzip.NewReader(fh); err == nil {
			r = z
		}
	}
	if r == nil {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			rel := unix.ByteSliceToString(u.Release[:])
			if fh, err := os.Open("/boot/config-" + rel); err == nil {
				defer fh.Close()
				r = fh
			}
		}
	}
	if r == nil {
		return nil
	}
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.HasPrefix(k, "CONFIG_IP_") {
			out[k] = v
		}
	}
	return out
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// sysctl reads an integer under /proc/sys; -1 when it cannot.
func sysctl(key string) int {
	v, err := strconv.Atoi(strings.TrimSpace(readFile("/proc/sys/" + key)))
	if err != nil {
		return -1
	}
	return v
}
