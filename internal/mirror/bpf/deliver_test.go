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
	"github.com/vishvananda/netns"
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

// An accepted packet is cloned, VXLAN-encapsulated with the session's VNI,
// to the collector (a namespace of its own with a UDP socket on 4789);
// a rejected one is not; the original passes (TC_ACT_OK) either way.
func TestDeliverToCollector(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it builds namespaces and loads eBPF")
	}
	tap, coll := fmt.Sprintf("ocbpf%d-tap", os.Getpid()), fmt.Sprintf("ocbpf%d-col", os.Getpid())
	sh(t, "ip netns add "+tap+" && ip netns add "+coll)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", tap).Run(); exec.Command("ip", "netns", "del", coll).Run() })
	sh(t, fmt.Sprintf("ip -n %s link add u0 type veth peer name u1 netns %s", tap, coll))
	sh(t, fmt.Sprintf("ip -n %s addr add 10.77.0.1/24 dev u0 && ip -n %s link set u0 up && ip -n %s link set lo up", tap, tap, tap))
	sh(t, fmt.Sprintf("ip -n %s addr add 10.77.0.2/24 dev u1 && ip -n %s link set u1 up && ip -n %s link set lo up", coll, coll, coll))
	sh(t, fmt.Sprintf("ip -n %s link add mx0 type vxlan external dstport 4789 && ip -n %s link set mx0 up", tap, tap))
	var conn *net.UDPConn
	inNS(t, coll, func() {
		var err error
		if conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 4789}); err != nil {
			t.Error(err)
		}
	})
	if conn == nil {
		t.FailNow()
	}
	defer conn.Close()
	var got []uint32
	inNS(t, tap, func() {
		l, err := net.InterfaceByName("mx0")
		if err != nil {
			t.Error(err)
			return
		}
		f := filter(t, "10 reject proto udp dport 53", "20 accept proto udp")
		ins, err := Compile(f, Options{Ifindex: l.Index, Collector: netip.MustParseAddr("10.77.0.2").As4(), VNI: 4242})
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
		for _, dport := range []uint16{5001, 53, 5002} {
			b := frame(17, netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("239.1.1.1"), 4000, dport, 5, 0)
			ret, _, err := prog.Test(b)
			if err != nil {
				t.Errorf("test run: %v", err)
				return
			}
			got = append(got, ret)
		}
	})
	for i, r := range got {
		if r != 0 {
			t.Errorf("packet %d: returned %d, want TC_ACT_OK (0): production traffic must pass", i, r)
		}
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var ports []uint16
	buf := make([]byte, 2048)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if n < 8+14+20+8 || buf[0]&0x08 == 0 {
			t.Fatalf("not a VXLAN datagram: %x", buf[:n])
		}
		if vni := binary.BigEndian.Uint32(buf[4:8]) >> 8; vni != 4242 {
			t.Fatalf("VNI %d, want 4242", vni)
		}
		inner := buf[8+14 : n]
		ports = append(ports, binary.BigEndian.Uint16(inner[22:24]))
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	}
	if fmt.Sprint(ports) != "[5001 5002]" {
		t.Fatalf("collector got copies for destination ports %v, want [5001 5002] (53 rejected)", ports)
	}
}
