// Package rpf answers PIM's unicast questions from the kernel's routing
// table over netlink: which interface and next hop lead to an address
// (RPF_interface and RPF neighbour), and when that may have changed.
package rpf

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"overcast/internal/pim"
)

// Kernel looks routes up in this network namespace's main table. Answers
// are cached until Invalidate; the daemon invalidates on every route
// notification before asking PIM to re-check its trees.
type Kernel struct {
	mu    sync.Mutex
	cache map[netip.Addr]answer
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
	a := lookup(dst)
	k.cache[dst] = a
	return a.rpf, a.ok
}

// Invalidate forgets cached answers.
func (k *Kernel) Invalidate() {
	k.mu.Lock()
	k.cache = map[netip.Addr]answer{}
	k.mu.Unlock()
}

func lookup(dst netip.Addr) answer {
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		return answer{}
	}
	r := rs[0]
	ifi, err := net.InterfaceByIndex(r.LinkIndex)
	if err != nil {
		return answer{}
	}
	out := pim.RPF{Iface: ifi.Name, Metric: uint32(r.Priority)}
	if r.Gw != nil {
		out.Neighbor, _ = netip.AddrFromSlice(r.Gw.To4())
	}
	if r.Type == unix.RTN_UNREACHABLE || r.Type == unix.RTN_BLACKHOLE || r.Type == unix.RTN_PROHIBIT {
		return answer{}
	}
	return answer{rpf: out, ok: true}
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
