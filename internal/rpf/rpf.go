// Package rpf answers PIM's unicast questions from the kernel's routing
// table over netlink: which interface and next hop lead to an address
// (RPF_interface and RPF neighbour), and when that may have changed.
package rpf

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"overcast/internal/pim"
)

// Kernel looks routes up in this network namespace's main table. Answers
// are cached until Invalidate; the daemon invalidates on every route
// notification before asking PIM to re-check its trees.
type Kernel struct {
	mu     sync.Mutex
	cache  map[netip.Addr]answer
	tables map[int][]Candidate // routing tables as listed since the last Invalidate
}

type answer struct {
	rpf pim.RPF
	ok  bool
}

// New returns an empty kernel route source.
func New() *Kernel { return &Kernel{cache: map[netip.Addr]answer{}} }

// Lookup implements pim.Routing.
func (k *Kernel) Lookup(dst netip.Addr) (pim.RPF, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.cache[dst]; ok {
		return a.rpf, a.ok
	}
	a := k.lookup(dst)
	k.cache[dst] = a
	return a.rpf, a.ok
}

// Invalidate forgets cached answers.
func (k *Kernel) Invalidate() {
	k.mu.Lock()
	k.cache = map[netip.Addr]answer{}
	k.tables = nil
	k.mu.Unlock()
}

func (k *Kernel) lookup(dst netip.Addr) answer {
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		return answer{}
	}
	r := rs[0]
	if r.Type == unix.RTN_UNREACHABLE || r.Type == unix.RTN_BLACKHOLE || r.Type == unix.RTN_PROHIBIT {
		return answer{}
	}
	ifi, err := net.InterfaceByIndex(r.LinkIndex)
	if err != nil {
		return answer{}
	}
	out := pim.RPF{Iface: ifi.Name}
	if r.Gw != nil {
		out.Neighbor, _ = netip.AddrFromSlice(r.Gw.To4())
	}
	// RouteGet resolves the next hop but carries neither the metric nor
	// the protocol: find the table route it came from.
	table := r.Table
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	if m, ok := Match(k.table(table), dst, r.LinkIndex, out.Neighbor); ok {
		out.Protocol, out.Preference, out.Metric = ProtocolName(m.Protocol), Preference(m.Protocol), m.Metric
		out.Prefix = m.Prefix
	}
	return answer{rpf: out, ok: true}
}

// table lists a routing table once per Invalidate (a full table can be
// large; every lookup until the next route change shares the listing),
// one candidate per next hop.
func (k *Kernel) table(id int) []Candidate {
	if cs, ok := k.tables[id]; ok {
		return cs
	}
	list, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: id}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil
	}
	var cands []Candidate
	for _, x := range list {
		c := Candidate{Protocol: int(x.Protocol), Metric: uint32(x.Priority), LinkIndex: x.LinkIndex, Type: x.Type}
		if x.Dst == nil {
			c.Prefix = netip.MustParsePrefix("0.0.0.0/0")
		} else if a, ok := netip.AddrFromSlice(x.Dst.IP.To4()); ok {
			bits, _ := x.Dst.Mask.Size()
			c.Prefix = netip.PrefixFrom(a, bits)
		} else {
			continue
		}
		if x.Gw != nil {
			c.Gateway, _ = netip.AddrFromSlice(x.Gw.To4())
		}
		if len(x.MultiPath) == 0 {
			cands = append(cands, c)
		}
		for _, nh := range x.MultiPath {
			c.LinkIndex, c.Gateway = nh.LinkIndex, netip.Addr{}
			if nh.Gw != nil {
				c.Gateway, _ = netip.AddrFromSlice(nh.Gw.To4())
			}
			cands = append(cands, c)
		}
	}
	if k.tables == nil {
		k.tables = map[int][]Candidate{}
	}
	k.tables[id] = cands
	return cands
}

// Candidate is a route of the table, as far as RPF needs it.
type Candidate struct {
	Prefix    netip.Prefix
	Gateway   netip.Addr
	LinkIndex int
	Protocol  int // rtm_protocol
	Metric    uint32
	Type      int
}

// Match picks the route a lookup resolved through: the longest prefix
// holding dst on the resolved interface (and gateway, when it has one),
// the lowest metric among equals.
func Match(cands []Candidate, dst netip.Addr, link int, gw netip.Addr) (Candidate, bool) {
	var best Candidate
	found := false
	for _, c := range cands {
		if !c.Prefix.Contains(dst) || c.LinkIndex != link || (gw.IsValid() && c.Gateway.IsValid() && c.Gateway != gw) {
			continue
		}
		if c.Type != 0 && c.Type != unix.RTN_UNICAST {
			continue
		}
		if !found || c.Prefix.Bits() > best.Prefix.Bits() || c.Prefix.Bits() == best.Prefix.Bits() && c.Metric < best.Metric {
			best, found = c, true
		}
	}
	return best, found
}

// rtm_protocol values FRR's zebra installs routes with (rt_netlink.h).
const (
	protoKernel  = 2
	protoBoot    = 3
	protoStatic  = 4
	protoBGP     = 186
	protoISIS    = 187
	protoOSPF    = 188
	protoRIP     = 189
	protoEIGRP   = 192
	protoZStatic = 196 // FRR staticd
)

// ProtocolName is the routing protocol that installed a route, as Cisco's
// `RPF type: unicast (ospf)` names it.
func ProtocolName(proto int) string {
	switch proto {
	case protoKernel:
		return "connected"
	case protoBoot, protoStatic:
		return "kernel"
	case protoZStatic:
		return "static"
	case protoBGP:
		return "bgp"
	case protoISIS:
		return "isis"
	case protoOSPF:
		return "ospf"
	case protoRIP:
		return "rip"
	case protoEIGRP:
		return "eigrp"
	}
	return "proto " + strconv.Itoa(proto)
}

// Preference is the administrative distance PIM asserts compare
// (RFC 7761 section 4.6), as FRR's zebra assigns it: kernel routes
// (ip route add) and connected 0, static 1, eBGP 20, EIGRP 90, OSPF 110,
// IS-IS 115, RIP 120.
func Preference(proto int) uint32 {
	switch proto {
	case protoZStatic:
		return 1
	case protoBGP:
		return 20
	case protoEIGRP:
		return 90
	case protoOSPF:
		return 110
	case protoISIS:
		return 115
	case protoRIP:
		return 120
	}
	return 0
}

// Subscribe calls changed after every IPv4 route change and every link
// state change in this namespace until ctx ends (a link going down makes
// the kernel skip its routes without a route notification when
// ignore_routes_with_linkdown is set). changed runs on the subscription
// goroutine.
func Subscribe(ctx context.Context, changed func()) error {
	routes := make(chan netlink.RouteUpdate, 256)
	links := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.RouteSubscribe(routes, done); err != nil {
		return err
	}
	if err := netlink.LinkSubscribe(links, done); err != nil {
		close(done)
		return err
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-routes:
				if !ok {
					return
				}
				if u.Family == netlink.FAMILY_V4 || u.Dst == nil || u.Dst.IP.To4() != nil {
					changed()
				}
			case _, ok := <-links:
				if !ok {
					return
				}
				changed()
			}
		}
	}()
	return nil
}
