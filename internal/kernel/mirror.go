package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"overcast/internal/dataplane"
	"overcast/internal/mirror"
	"overcast/internal/mirror/bpf"
)

// Mirror is traffic mirroring on a real host. Each tap flow is one tc
// program (internal/mirror/bpf) attached with TCX to its port's ingress,
// egress or both, first on the hook; it clones accepted packets to the
// egress of a delivery device: a collect_md VXLAN device per collector
// UDP port (ocmxPORT, made here), or a service's local port. The delivery
// program there rewrites the copy by its service's entry in the services
// map (tunnel key, truncation, MAC, VLAN). Production packets are never
// changed: the tap program returns TCX_NEXT whatever happens.
type Mirror struct {
	log      *slog.Logger
	mu       sync.Mutex
	services *ebpf.Map // index -> bpf.Service
	rate     *ebpf.Map // index -> GCRA state
	delivery *ebpf.Program
	drop     *ebpf.Program // on a VXLAN device's ingress: it only sends

	svcs    map[string]*mirrorSvc
	devices map[string]*mirrorDev // by device name
	flows   map[string]*mirrorFlow
}

type mirrorSvc struct {
	spec  mirror.Service
	index uint16
}

type mirrorDev struct {
	ifindex int
	owned   bool      // a VXLAN device this made (deleted when unused)
	link    link.Link // the delivery program on its egress
	in      link.Link // owned: the drop program on its ingress
}

type mirrorFlow struct {
	spec     mirror.Flow
	key      string // what its program was compiled from
	ifindex  int
	counters *ebpf.Map
	links    map[ebpf.AttachType]link.Link
	note     string
}

// NewMirror loads the maps and the delivery program, or says why eBPF
// cannot be used here.
func NewMirror(log *slog.Logger) (*Mirror, error) {
	_ = rlimit.RemoveMemlock() // kernels before 5.11 charge maps to RLIMIT_MEMLOCK
	fail := func(err error) error {
		switch {
		case errors.Is(err, unix.EPERM):
			return fmt.Errorf("mirroring needs eBPF, and loading it was not permitted: run the daemon as root, or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; nothing is mirrored")
		case errors.Is(err, ebpf.ErrNotSupported):
			return fmt.Errorf("mirroring needs eBPF with TCX (Linux 6.6 or later), which this kernel lacks: %v; nothing is mirrored", err)
		}
		return fmt.Errorf("mirroring needs eBPF with TCX (Linux 6.6 or later; root, or CAP_BPF and CAP_NET_ADMIN): %w; nothing is mirrored", err)
	}
	m := &Mirror{log: log, svcs: map[string]*mirrorSvc{}, devices: map[string]*mirrorDev{}, flows: map[string]*mirrorFlow{}}
	var err error
	if m.services, err = ebpf.NewMap(&ebpf.MapSpec{Name: "oc_mirror_svc", Type: ebpf.Array, KeySize: 4, ValueSize: bpf.ServiceSize, MaxEntries: bpf.MaxServices}); err != nil {
		return nil, fail(err)
	}
	if m.rate, err = ebpf.NewMap(&ebpf.MapSpec{Name: "oc_mirror_rate", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: bpf.MaxServices}); err != nil {
		m.services.Close()
		return nil, fail(err)
	}
	if m.delivery, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "oc_mirror_dlv", Type: ebpf.SchedCLS, Instructions: bpf.CompileDelivery(m.services.FD()), License: "GPL"}); err != nil {
		m.services.Close()
		m.rate.Close()
		return nil, fail(err)
	}
	// The VXLAN device binds its UDP port like any VXLAN device: what
	// comes in would be decapsulated into this host. It only sends.
	if m.drop, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "oc_mirror_drop", Type: ebpf.SchedCLS, Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, License: "GPL"}); err != nil {
		m.delivery.Close()
		m.services.Close()
		m.rate.Close()
		return nil, fail(err)
	}
	return m, nil
}

var _ dataplane.Mirror = (*Mirror)(nil)

func deviceFor(s mirror.Service) string {
	if s.Port != "" {
		return s.Port
	}
	return fmt.Sprintf("ocmx%d", s.Collector.Port())
}

// plan is what Apply will do, prepared (and checked) without touching
// what runs: programs loaded, indices chosen.
type plan struct {
	index   map[string]uint16
	newDevs []string // VXLAN devices to make
	progs   map[string]*ebpf.Program
	ctrs    map[string]*ebpf.Map // new flows' counters
	keys    map[string]string
	ifindex map[string]int
	notes   map[string]string // flows whose copies the underlay fragments
}

func (p *plan) discard() {
	for _, x := range p.progs {
		x.Close()
	}
	for _, x := range p.ctrs {
		x.Close()
	}
}

func (m *Mirror) prepare(s mirror.Set) (*plan, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	p := &plan{index: map[string]uint16{}, progs: map[string]*ebpf.Program{}, ctrs: map[string]*ebpf.Map{}, keys: map[string]string{}, ifindex: map[string]int{}, notes: map[string]string{}}
	underlayMTU := map[string]int{}
	used := map[uint16]bool{}
	for _, x := range s.Services {
		if old, ok := m.svcs[x.Name]; ok {
			p.index[x.Name] = old.index
			used[old.index] = true
		}
	}
	next := uint16(1)
	for _, x := range s.Services {
		if _, ok := p.index[x.Name]; ok {
			continue
		}
		for used[next] {
			next++
		}
		p.index[x.Name], used[next] = next, true
	}
	// Targets: a port must exist, a collector must be routable.
	targetIndex := map[string]int{}
	for _, x := range s.Services {
		dev := deviceFor(x)
		if x.Port != "" {
			l, err := netlink.LinkByName(x.Port)
			if err != nil {
				return nil, fmt.Errorf("service %s: no interface %q on this host (ip link shows them)", x.Name, x.Port)
			}
			targetIndex[x.Name] = l.Attrs().Index
			continue
		}
		rs, err := netlink.RouteGet(net.IP(x.Collector.Addr().AsSlice()))
		if err != nil || len(rs) == 0 {
			return nil, fmt.Errorf("service %s: collector %s is not reachable from this host (%v): check the address, or add a route to it", x.Name, x.Collector.Addr(), err)
		}
		if l, err := netlink.LinkByIndex(rs[0].LinkIndex); err == nil {
			underlayMTU[x.Name] = l.Attrs().MTU
			if rs[0].MTU > 0 && rs[0].MTU < underlayMTU[x.Name] {
				underlayMTU[x.Name] = rs[0].MTU
			}
		}
		if d, ok := m.devices[dev]; ok {
			targetIndex[x.Name] = d.ifindex
		} else if l, err := netlink.LinkByName(dev); err == nil {
			targetIndex[x.Name] = l.Attrs().Index // one a predecessor left
		} else {
			targetIndex[x.Name] = -1 // made at Apply
			if !slices.Contains(p.newDevs, dev) {
				p.newDevs = append(p.newDevs, dev)
			}
		}
	}
	for _, f := range s.Flows {
		l, err := netlink.LinkByName(f.Port)
		if err != nil {
			p.discard()
			return nil, fmt.Errorf("flow %s: no interface %q on this host (ip link shows them)", f.Name, f.Port)
		}
		p.ifindex[f.Name] = l.Attrs().Index
		svc, _ := s.Service(f.Service)
		if u := underlayMTU[f.Service]; u > 0 {
			// A copy is the frame (the port's MTU and an Ethernet header)
			// in VXLAN, UDP and IPv4: 36 octets more.
			frame := l.Attrs().MTU + 14
			if svc.Truncate > 0 && int(svc.Truncate) < frame {
				frame = int(svc.Truncate)
			}
			if frame+36 > u {
				p.notes[f.Name] = fmt.Sprintf("copies of frames over %d octets are IP fragments toward the collector (underlay MTU %d): raise it to %d, or truncate to %d",
					u-36, u, frame+36, u-36)
			}
		}
		key := flowKey(f, svc, p.index[f.Service], targetIndex[f.Service], l.Attrs().Index)
		p.keys[f.Name] = key
		if old, ok := m.flows[f.Name]; ok && old.key == key {
			continue
		}
		if targetIndex[f.Service] < 0 {
			continue // compiled at Apply, once its device has an index
		}
		if err := p.compile(m, f, svc, targetIndex[f.Service]); err != nil {
			p.discard()
			return nil, err
		}
	}
	return p, nil
}

// flowKey is what a flow's program depends on: when it changes, the
// program is compiled again and replaces the old one on its hooks.
func flowKey(f mirror.Flow, svc mirror.Service, index uint16, target, port int) string {
	return fmt.Sprintf("%+v|%+v|%d|%d|%d", f, svc, index, target, port)
}

// compile loads a flow's program (and a counters map for a new flow).
func (p *plan) compile(m *Mirror, f mirror.Flow, svc mirror.Service, target int) error {
	flt, err := f.Filter()
	if err != nil {
		return err
	}
	ctr := (*ebpf.Map)(nil)
	if old, ok := m.flows[f.Name]; ok {
		ctr = old.counters
	} else {
		if ctr, err = ebpf.NewMap(&ebpf.MapSpec{Name: "oc_mirror_ctr", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8 * bpf.NumCounters, MaxEntries: 1}); err != nil {
			return fmt.Errorf("flow %s: counters: %v", f.Name, err)
		}
		p.ctrs[f.Name] = ctr
	}
	o := bpf.Options{Ifindex: target, Service: p.index[f.Service], Counters: ctr.FD(), Truncate: svc.Truncate}
	if svc.Rate.PPS > 0 || svc.Rate.BPS > 0 {
		o.RateMap, o.RatePPS, o.RateBPS = m.rate.FD(), svc.Rate.PPS, svc.Rate.BPS
		o.BurstNS = 100_000_000 // a tenth of a second of the rate
	}
	ins, err := bpf.Compile(flt, o)
	if err != nil {
		return fmt.Errorf("flow %s: %v", f.Name, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "oc_mirror_tap", Type: ebpf.SchedCLS, Instructions: ins, License: "GPL"})
	if err != nil {
		return fmt.Errorf("flow %s: the kernel refused its program of %d rules: %v", f.Name, len(flt.Rules()), err)
	}
	p.progs[f.Name] = prog
	return nil
}

// Check says whether Apply would succeed, changing nothing.
func (m *Mirror) Check(s mirror.Set) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.prepare(s)
	if err != nil {
		return err
	}
	p.discard()
	return nil
}

// Apply makes s the running set.
func (m *Mirror) Apply(s mirror.Set) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.prepare(s)
	if err != nil {
		return err
	}
	var made []string
	undo := func() {
		p.discard()
		for _, dev := range made {
			m.releaseDevice(dev)
		}
	}
	for _, dev := range p.newDevs {
		if err := m.makeVXLAN(dev); err != nil {
			undo()
			return err
		}
		made = append(made, dev)
	}
	// Delivery programs on every target device.
	for _, x := range s.Services {
		if err := m.attachDelivery(deviceFor(x), x.Port == ""); err != nil {
			undo()
			return fmt.Errorf("service %s: %v", x.Name, err)
		}
	}
	// Flows of new devices compile now.
	for _, f := range s.Flows {
		if _, ok := p.progs[f.Name]; ok {
			continue
		}
		if old, ok := m.flows[f.Name]; ok && old.key == p.keys[f.Name] {
			continue
		}
		svc, _ := s.Service(f.Service)
		target := m.devices[deviceFor(svc)].ifindex
		p.keys[f.Name] = flowKey(f, svc, p.index[f.Service], target, p.ifindex[f.Name])
		if err := p.compile(m, f, svc, target); err != nil {
			undo()
			return err
		}
	}
	// Service entries, then programs that use them.
	for _, x := range s.Services {
		old, had := m.svcs[x.Name]
		if had && old.spec == x {
			continue
		}
		e := bpf.Service{Tunnel: x.Port == "", StripVLAN: x.StripVLAN, VNI: x.VNI, Truncate: x.Truncate}
		if x.Port == "" {
			e.Remote = x.Collector.Addr().As4()
		}
		if x.MAC != "" {
			e.MAC, _ = mirror.ParseMAC(x.MAC)
			e.SetMAC = true
		}
		v, _ := e.MarshalBinary()
		idx := uint32(p.index[x.Name])
		if err := m.services.Put(idx, v); err != nil {
			undo()
			return fmt.Errorf("service %s: %v", x.Name, err)
		}
		m.rate.Put(idx, uint64(0))
		m.svcs[x.Name] = &mirrorSvc{spec: x, index: p.index[x.Name]}
	}
	for _, f := range s.Flows {
		prog := p.progs[f.Name]
		if prog == nil {
			continue
		}
		if err := m.attachFlow(f, prog, p); err != nil {
			undo()
			return err
		}
		delete(p.ctrs, f.Name) // the flow owns it now
	}
	p.discard() // the links hold the programs
	for _, f := range s.Flows {
		if fl := m.flows[f.Name]; fl != nil {
			fl.note = p.notes[f.Name]
		}
	}
	// What is no longer wanted.
	for name, fl := range m.flows {
		if !slices.ContainsFunc(s.Flows, func(f mirror.Flow) bool { return f.Name == name }) {
			for _, l := range fl.links {
				l.Close()
			}
			fl.counters.Close()
			delete(m.flows, name)
		}
	}
	for name, x := range m.svcs {
		if _, ok := s.Service(name); !ok {
			m.services.Put(uint32(x.index), make([]byte, bpf.ServiceSize))
			delete(m.svcs, name)
		}
	}
	for dev := range m.devices {
		if !slices.ContainsFunc(s.Services, func(x mirror.Service) bool { return deviceFor(x) == dev }) {
			m.releaseDevice(dev)
		}
	}
	return nil
}

// attachFlow puts a flow's program on its hooks (replacing an older
// program in place, so the hook is never empty).
func (m *Mirror) attachFlow(f mirror.Flow, prog *ebpf.Program, p *plan) error {
	old := m.flows[f.Name]
	want := map[ebpf.AttachType]bool{}
	if f.Direction&mirror.In != 0 {
		want[ebpf.AttachTCXIngress] = true
	}
	if f.Direction&mirror.Out != 0 {
		want[ebpf.AttachTCXEgress] = true
	}
	fl := &mirrorFlow{spec: f, key: p.keys[f.Name], ifindex: p.ifindex[f.Name], links: map[ebpf.AttachType]link.Link{}}
	if old != nil {
		fl.counters = old.counters
	} else {
		fl.counters = p.ctrs[f.Name]
	}
	for at := range want {
		if old != nil && old.ifindex == fl.ifindex {
			if l, ok := old.links[at]; ok {
				if err := l.Update(prog); err != nil {
					return fmt.Errorf("flow %s: replacing its program: %v", f.Name, err)
				}
				fl.links[at] = l
				delete(old.links, at)
				continue
			}
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: fl.ifindex, Program: prog, Attach: at, Anchor: link.Head()})
		if err != nil {
			for a, l := range fl.links {
				if old == nil || old.links[a] == nil {
					l.Close()
				}
			}
			return fmt.Errorf("flow %s: attaching to %s: %v (mirroring needs TCX: Linux 6.6 or later)", f.Name, f.Port, err)
		}
		fl.links[at] = l
	}
	if old != nil {
		for _, l := range old.links {
			l.Close() // a direction no longer tapped, or another port
		}
	}
	m.flows[f.Name] = fl
	return nil
}

func (m *Mirror) makeVXLAN(dev string) error {
	var port int
	fmt.Sscanf(dev, "ocmx%d", &port)
	v := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: dev}, FlowBased: true, Port: port}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("making the VXLAN device %s: %v", dev, err)
	}
	os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6", []byte("1"), 0)
	if err := netlink.LinkSetUp(v); err != nil {
		netlink.LinkDel(v)
		return fmt.Errorf("setting %s up: %v", dev, err)
	}
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	m.devices[dev] = &mirrorDev{ifindex: l.Attrs().Index, owned: true}
	return nil
}

func (m *Mirror) attachDelivery(dev string, vxlan bool) error {
	d := m.devices[dev]
	if d == nil {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("no interface %q", dev)
		}
		d = &mirrorDev{ifindex: l.Attrs().Index, owned: vxlan}
		m.devices[dev] = d
	}
	if d.owned && d.in == nil {
		l, err := link.AttachTCX(link.TCXOptions{Interface: d.ifindex, Program: m.drop, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		if err != nil {
			return fmt.Errorf("attaching the drop program to %s: %v (mirroring needs TCX: Linux 6.6 or later)", dev, err)
		}
		d.in = l
	}
	if d.link != nil {
		return nil
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: d.ifindex, Program: m.delivery, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
	if err != nil {
		return fmt.Errorf("attaching the delivery program to %s: %v (mirroring needs TCX: Linux 6.6 or later)", dev, err)
	}
	d.link = l
	return nil
}

func (m *Mirror) releaseDevice(dev string) {
	d := m.devices[dev]
	if d == nil {
		return
	}
	if d.link != nil {
		d.link.Close()
	}
	if d.in != nil {
		d.in.Close()
	}
	if d.owned {
		if l, err := netlink.LinkByName(dev); err == nil {
			netlink.LinkDel(l)
		}
	}
	delete(m.devices, dev)
}

// Counters reads every flow's per-CPU counters.
func (m *Mirror) Counters() map[string]dataplane.MirrorFlowState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]dataplane.MirrorFlowState{}
	for name, fl := range m.flows {
		var st dataplane.MirrorFlowState
		var per [][]byte
		if err := fl.counters.Lookup(uint32(0), &per); err == nil {
			var c [bpf.NumCounters]uint64
			for _, v := range per {
				for i := range c {
					c[i] += binary.NativeEndian.Uint64(v[i*8:])
				}
			}
			st.Counters = mirror.Counters{Mirrored: c[bpf.CtrMirrored], Bytes: c[bpf.CtrBytes], Skipped: c[bpf.CtrSkipped],
				RateDropped: c[bpf.CtrRateDropped], Truncated: c[bpf.CtrTruncated], SendErrors: c[bpf.CtrSendErrors]}
		}
		st.Attached, st.Note = true, fl.note
		if l, err := netlink.LinkByIndex(fl.ifindex); err != nil || l.Attrs().Name != fl.spec.Port {
			st.Attached, st.Detail = false, fmt.Sprintf("port %s is gone: del and add the flow once it is back", fl.spec.Port)
		}
		out[name] = st
	}
	return out
}

// Close detaches everything and deletes the devices this made.
func (m *Mirror) Close() error {
	err := m.Apply(mirror.Set{})
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delivery.Close()
	m.drop.Close()
	m.services.Close()
	m.rate.Close()
	return errors.Join(err)
}
