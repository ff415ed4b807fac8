package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"

	"overcast/internal/mirror"
)

func sh(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

// inNS runs f on a thread inside a named namespace.
func inNS(t *testing.T, name string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread is discarded with its namespace: never unlocked
		ns, err := netns.GetFromName(name)
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		f()
	}()
	<-done
}

// rig is a tap namespace with a collect_md VXLAN device mx0 (its delivery
// program attached), a veth to a collector namespace with a UDP socket on
// 4789, and the services and counters maps.
type rig struct {
	tap, coll string
	conn      *net.UDPConn
	mx0       int
	services  *ebpf.Map
	counters  *ebpf.Map
	rate      *ebpf.Map
}

func newRig(t *testing.T, name string) *rig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it builds namespaces and loads eBPF")
	}
	r := &rig{tap: fmt.Sprintf("oc%s%d-t", name, os.Getpid()), coll: fmt.Sprintf("oc%s%d-c", name, os.Getpid())}
	sh(t, "ip netns add "+r.tap+" && ip netns add "+r.coll)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", r.tap).Run()
		exec.Command("ip", "netns", "del", r.coll).Run()
	})
	sh(t, fmt.Sprintf("ip -n %s link add u0 type veth peer name u1 netns %s", r.tap, r.coll))
	sh(t, fmt.Sprintf("ip -n %s addr add 10.77.0.1/24 dev u0 && ip -n %s link set u0 up && ip -n %s link set lo up", r.tap, r.tap, r.tap))
	sh(t, fmt.Sprintf("ip -n %s addr add 10.77.0.2/24 dev u1 && ip -n %s link set u1 up && ip -n %s link set lo up", r.coll, r.coll, r.coll))
	sh(t, fmt.Sprintf("ip -n %s link add mx0 type vxlan external dstport 4789 && ip -n %s link set mx0 up", r.tap, r.tap))
	inNS(t, r.coll, func() {
		var err error
		if r.conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 4789}); err != nil {
			t.Error(err)
		}
	})
	if r.conn == nil {
		t.FailNow()
	}
	t.Cleanup(func() { r.conn.Close() })
	var err error
	if r.services, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: ServiceSize, MaxEntries: MaxServices}); err != nil {
		t.Fatal(err)
	}
	if r.counters, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8 * NumCounters, MaxEntries: 1}); err != nil {
		t.Fatal(err)
	}
	if r.rate, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: MaxServices}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.services.Close(); r.counters.Close(); r.rate.Close() })
	inNS(t, r.tap, func() {
		l, err := net.InterfaceByName("mx0")
		if err != nil {
			t.Error(err)
			return
		}
		r.mx0 = l.Index
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, Instructions: CompileDelivery(r.services.FD()), License: "GPL"})
		if err != nil {
			t.Errorf("load delivery: %v", err)
			return
		}
		lk, err := link.AttachTCX(link.TCXOptions{Interface: l.Index, Program: prog, Attach: ebpf.AttachTCXEgress})
		prog.Close()
		if err != nil {
			t.Errorf("attach delivery: %v", err)
			return
		}
		t.Cleanup(func() { lk.Close() })
	})
	if t.Failed() {
		t.FailNow()
	}
	return r
}

func (r *rig) setService(t *testing.T, i uint32, s Service) {
	t.Helper()
	v, _ := s.MarshalBinary()
	if err := r.services.Put(i, v); err != nil {
		t.Fatal(err)
	}
}

// run loads a tap program in the tap namespace and runs it on frames.
func (r *rig) run(t *testing.T, f mirror.Filter, o Options, frames [][]byte) {
	t.Helper()
	inNS(t, r.tap, func() {
		ins, err := Compile(f, o)
		if err != nil {
			t.Error(err)
			return
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, Instructions: ins, License: "GPL"})
		if err != nil {
			t.Errorf("load: %v", err)
			return
		}
		defer prog.Close()
		for i, b := range frames {
			ret, _, err := prog.Test(b)
			if err != nil {
				t.Errorf("test run: %v", err)
				return
			}
			if ret != TCXNext {
				t.Errorf("packet %d: returned %#x, want TCX_NEXT: production traffic must pass", i, ret)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
}

// collect reads the collector's datagrams until it is quiet.
func (r *rig) collect(t *testing.T) (vnis []uint32, inner [][]byte) {
	t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		buf := make([]byte, 2048)
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n < 8+14 || buf[0]&0x08 == 0 {
			t.Fatalf("not a VXLAN datagram: %x", buf[:n])
		}
		vnis = append(vnis, binary.BigEndian.Uint32(buf[4:8])>>8)
		inner = append(inner, buf[8:n])
		r.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	}
}

func (r *rig) sum(t *testing.T) [NumCounters]uint64 {
	t.Helper()
	var per [][]byte
	if err := r.counters.Lookup(uint32(0), &per); err != nil {
		t.Fatal(err)
	}
	var c [NumCounters]uint64
	for _, v := range per {
		for i := range c {
			c[i] += binary.NativeEndian.Uint64(v[i*8:])
		}
	}
	return c
}

// An accepted packet is cloned, VXLAN-encapsulated with the session's VNI,
// to the collector; a rejected one is not; the original passes
// (TCX_NEXT) either way, and the counters say so.
func TestDeliverToCollector(t *testing.T) {
	r := newRig(t, "dl")
	r.setService(t, 7, Service{Tunnel: true, Remote: netip.MustParseAddr("10.77.0.2").As4(), VNI: 4242})
	var frames [][]byte
	for _, dport := range []uint16{5001, 53, 5002} {
		frames = append(frames, frame(17, netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("239.1.1.1"), 4000, dport, 5, 0))
	}
	r.run(t, filter(t, "10 reject proto udp dport 53", "20 accept proto udp"),
		Options{Ifindex: r.mx0, Service: 7, Counters: r.counters.FD()}, frames)
	vnis, inner := r.collect(t)
	var ports []uint16
	for i, b := range inner {
		if vnis[i] != 4242 {
			t.Fatalf("VNI %d, want 4242", vnis[i])
		}
		ports = append(ports, binary.BigEndian.Uint16(b[14+22:]))
	}
	if fmt.Sprint(ports) != "[5001 5002]" {
		t.Fatalf("collector got copies for destination ports %v, want [5001 5002] (53 rejected)", ports)
	}
	c := r.sum(t)
	if c[CtrMirrored] != 2 || c[CtrSkipped] != 1 || c[CtrBytes] != uint64(2*len(frames[0])) || c[CtrSendErrors] != 0 {
		t.Fatalf("counters %v: want 2 mirrored, 1 skipped, %d bytes", c, 2*len(frames[0]))
	}
}

// Truncation, the destination MAC rewrite and the rate limit act on the
// copies only.
func TestDeliveryRewritesAndRate(t *testing.T) {
	r := newRig(t, "rw")
	mac := [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	r.setService(t, 3, Service{Tunnel: true, Remote: netip.MustParseAddr("10.77.0.2").As4(), VNI: 99, Truncate: 60, SetMAC: true, MAC: mac})
	var frames [][]byte
	for i := range 50 {
		b := frame(6, netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("198.51.100.8"), 4000, uint16(80+i), 5, 0)
		b = append(b, make([]byte, 100)...) // 164 octets
		frames = append(frames, b)
	}
	// 10 copies/s with a burst of 4 periods: the first 5 of a quick run pass.
	r.run(t, filter(t, "accept dst 198.51.100.8"), Options{Ifindex: r.mx0, Service: 3, Counters: r.counters.FD(),
		RateMap: r.rate.FD(), RatePPS: 10, BurstNS: 4 * 100_000_000, Truncate: 60}, frames)
	_, inner := r.collect(t)
	if len(inner) != 5 {
		t.Fatalf("collector got %d copies, want 5 (rate 10/s, burst 4 periods)", len(inner))
	}
	for i, b := range inner {
		if len(b) != 60 {
			t.Fatalf("copy %d is %d octets, want 60 (truncated)", i, len(b))
		}
		if [6]byte(b[:6]) != mac {
			t.Fatalf("copy %d has destination MAC %x, want %x", i, b[:6], mac)
		}
		if p := binary.BigEndian.Uint16(b[14+22:]); p != uint16(80+i) {
			t.Fatalf("copy %d is of the packet to port %d, want %d", i, p, 80+i)
		}
	}
	c := r.sum(t)
	if c[CtrMirrored] != 5 || c[CtrRateDropped] != 45 || c[CtrTruncated] != 5 || c[CtrBytes] != 5*60 {
		t.Fatalf("counters %v: want 5 mirrored, 45 over the rate, 5 truncated, 300 bytes", c)
	}
}
