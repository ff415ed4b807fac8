// Package fake is an in-memory forwarding plane and packet I/O for
// simulations and tests: it holds interfaces and routes, forwards packets
// by table lookup as the kernel's forwarding cache would (with the same
// upcalls), and records the control packets a daemon sends.
package fake

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"overcast/internal/dataplane"
)

// Forwarder implements dataplane.Forwarder, Registerer and RouteLister in
// memory. It is safe for concurrent use (a daemon may read counters from
// a helper goroutine).
type Forwarder struct {
	mu       sync.Mutex
	Ifaces   map[string]int // name -> ifindex
	Routes   map[dataplane.SG]dataplane.Route
	counters map[dataplane.SG]dataplane.Counters
	Calls    int // SetRoute + DelRoute calls, to check the reconciler is minimal
	Injected []Injected
}

// Injected is a packet sent by Inject.
type Injected struct {
	Oif string
	Pkt []byte
}

// Inject implements dataplane.Injector by recording.
func (f *Forwarder) Inject(oif string, pkt []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Ifaces[oif]; !ok {
		return fmt.Errorf("inject on %s: no such interface", oif)
	}
	f.Injected = append(f.Injected, Injected{Oif: oif, Pkt: slices.Clone(pkt)})
	return nil
}

// New returns an empty forwarder.
func New() *Forwarder {
	return &Forwarder{Ifaces: map[string]int{}, Routes: map[dataplane.SG]dataplane.Route{}, counters: map[dataplane.SG]dataplane.Counters{}}
}

func (f *Forwarder) AddInterface(name string, ifindex int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Ifaces[name]; ok {
		return fmt.Errorf("fake: interface %s already added", name)
	}
	f.Ifaces[name] = ifindex
	return nil
}

// ForgetInterfaces drops the interface table and keeps the routes: what a
// daemon restarting over a forwarder that outlives it sees (it adds its
// interfaces again and finds its predecessor's routes).
func (f *Forwarder) ForgetInterfaces() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.Ifaces)
}

func (f *Forwarder) DelInterface(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Ifaces[name]; !ok {
		return fmt.Errorf("fake: no interface %s", name)
	}
	delete(f.Ifaces, name)
	return nil
}

// EnableRegister adds the register interface.
func (f *Forwarder) EnableRegister() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Ifaces[dataplane.RegisterName] = 0
	return nil
}

func (f *Forwarder) SetRoute(r dataplane.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	for _, v := range append([]string{r.IIF}, r.OIFs...) {
		if _, ok := f.Ifaces[v]; !ok {
			return fmt.Errorf("fake: route %v uses missing interface %q", r.SG, v)
		}
	}
	r.OIFs = slices.Clone(r.OIFs)
	r.Peers = slices.Clone(r.Peers)
	f.Routes[r.SG] = r
	return nil
}

func (f *Forwarder) DelRoute(k dataplane.SG) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if _, ok := f.Routes[k]; !ok {
		return fmt.Errorf("fake: no route %v", k)
	}
	delete(f.Routes, k)
	delete(f.counters, k)
	return nil
}

func (f *Forwarder) Counters(fn func(dataplane.SG, dataplane.Counters)) error {
	f.mu.Lock()
	cs := make(map[dataplane.SG]dataplane.Counters, len(f.counters))
	for k, v := range f.counters {
		cs[k] = v
	}
	f.mu.Unlock()
	for k, v := range cs {
		fn(k, v)
	}
	return nil
}

func (f *Forwarder) SGCount(k dataplane.SG) (dataplane.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Routes[k]; !ok {
		return dataplane.Counters{}, fmt.Errorf("fake: no route %v", k)
	}
	return f.counters[k], nil
}

// Flush removes every route (stop --flush).
func (f *Forwarder) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.Routes)
	return nil
}

// ListRoutes returns the routes held, sorted.
func (f *Forwarder) ListRoutes() ([]dataplane.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dataplane.Route
	for _, r := range f.Routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b dataplane.Route) int {
		if c := a.Group.Compare(b.Group); c != 0 {
			return c
		}
		return a.Source.Compare(b.Source)
	})
	return out, nil
}

// Route returns the route held for k.
func (f *Forwarder) Route(k dataplane.SG) (dataplane.Route, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.Routes[k]
	return r, ok
}

// Forward delivers one packet of size bytes arriving on iface and returns
// the interfaces and peers it leaves by, or an upcall when there is no
// route or the packet came in the wrong way.
func (f *Forwarder) Forward(k dataplane.SG, iface string, size int) (out []string, peers []netip.AddrPort, up *dataplane.Upcall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.Routes[k]
	if !ok {
		return nil, nil, &dataplane.Upcall{Kind: dataplane.NoCache, Iface: iface, SG: k, IPID: -1}
	}
	c := f.counters[k]
	if r.IIF != iface {
		c.WrongIf++
		f.counters[k] = c
		return nil, nil, &dataplane.Upcall{Kind: dataplane.WrongVIF, Iface: iface, SG: k, IPID: -1}
	}
	c.Packets++
	c.Bytes += uint64(size)
	f.counters[k] = c
	return slices.Clone(r.OIFs), slices.Clone(r.Peers), nil
}

// Sent is one control packet a daemon sent.
type Sent struct {
	Iface string
	Proto dataplane.Proto
	Dst   netip.Addr
	Pkt   []byte
	Src   netip.Addr // set by SendFrom
}

// PacketIO implements dataplane.PacketIO by recording: sent packets go to
// OnSend (a virtual LAN) and to Sent when OnSend is nil.
type PacketIO struct {
	mu        sync.Mutex
	Listening map[string]map[dataplane.Proto]bool
	Sent      []Sent
	OnSend    func(Sent)
}

// NewPacketIO returns a recorder.
func NewPacketIO() *PacketIO { return &PacketIO{Listening: map[string]map[dataplane.Proto]bool{}} }

func (p *PacketIO) Listen(iface string, _ int, proto dataplane.Proto) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Listening[iface] == nil {
		p.Listening[iface] = map[dataplane.Proto]bool{}
	}
	p.Listening[iface][proto] = true
	return nil
}

func (p *PacketIO) Unlisten(iface string, _ int, proto dataplane.Proto) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.Listening[iface], proto)
	return nil
}

// Listens says whether proto is received on iface.
func (p *PacketIO) Listens(iface string, proto dataplane.Proto) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Listening[iface][proto]
}

func (p *PacketIO) Send(iface string, proto dataplane.Proto, dst netip.Addr, pkt []byte) error {
	return p.record(Sent{Iface: iface, Proto: proto, Dst: dst, Pkt: slices.Clone(pkt)})
}

// record hands a sent packet to OnSend, or keeps it when there is none.
func (p *PacketIO) record(s Sent) error {
	p.mu.Lock()
	on := p.OnSend
	if on == nil {
		p.Sent = append(p.Sent, s)
	}
	p.mu.Unlock()
	if on != nil {
		on(s)
	}
	return nil
}

// SendFrom implements dataplane.SourceSender.
func (p *PacketIO) SendFrom(src, dst netip.Addr, proto dataplane.Proto, pkt []byte) error {
	return p.record(Sent{Proto: proto, Dst: dst, Pkt: slices.Clone(pkt), Src: src})
}

// Take returns and forgets the recorded packets.
func (p *PacketIO) Take() []Sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.Sent
	p.Sent = nil
	return out
}
