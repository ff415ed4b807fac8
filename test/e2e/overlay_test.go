package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

const overlayKey = "e2e-overlay-key-0123456789"

// fabricRules make a router pass only unicast TCP, UDP and ICMP, as a
// cloud VPC's fabric does (seed 003): multicast, IGMP, GRE and IP-in-IP
// are dropped, each counted.
const fabricRules = `table inet fabric {
  counter c_mcast {}
  counter c_igmp {}
  counter c_gre {}
  counter c_ipip {}
  counter c_unicast {}
  chain forward {
    type filter hook forward priority 0; policy drop;
    ip daddr 224.0.0.0/4 counter name c_mcast drop
    ip protocol 2 counter name c_igmp drop
    ip protocol 47 counter name c_gre drop
    ip protocol 4 counter name c_ipip drop
    ip protocol { tcp, udp, icmp } counter name c_unicast accept
  }
}
`

// loadFabric installs fabricRules on a node.
func loadFabric(t *testing.T, l *lab.Lab, node string) {
	t.Helper()
	if out, err := l.Exec(node, "sh", "-c", "nft -f - <<'EOF'\n"+fabricRules+"EOF"); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

// fabricCounter reads one of the fabric's counters (packets).
func fabricCounter(t *testing.T, l *lab.Lab, node, name string) int {
	t.Helper()
	out, err := l.Exec(node, "nft", "list", "counter", "inet", "fabric", "c_"+name)
	if err != nil {
		t.Fatalf("nft list counter %s: %v\n%s", name, err, out)
	}
	i := strings.Index(out, "packets ")
	if i < 0 {
		t.Fatalf("counter %s: %s", name, out)
	}
	var n int
	fmt.Sscan(out[i+len("packets "):], &n)
	return n
}

func overlayConf(addr string, peers ...string) string {
	return fmt.Sprintf("log-level: debug\noverlay:\n  address: %s\n  key: %s\n  peers: [%s]\n", addr, overlayKey, strings.Join(peers, ", "))
}

func overlayPeersUp(c *api.Client, n int) string {
	var ps []api.OverlayPeer
	if err := c.Get(api.PathOverlayPeers, &ps); err != nil {
		return err.Error()
	}
	up := 0
	for _, p := range ps {
		if p.State == "up" {
			up++
		}
	}
	if up != n {
		return fmt.Sprintf("%d peers up of %d, want %d: %+v", up, len(ps), n, ps)
	}
	return ""
}

// seed003 is seed 003's VPC: two VMs in two zones whose fabric router
// passes only unicast TCP, UDP and ICMP.
const seed003 = `
name: seed003
nodes:
  - name: vm1
    routes: ["10.2.0.0/24 via 10.1.0.1"]
    sysctls: ["net.ipv4.icmp_echo_ignore_broadcasts=0"]
    overcast: |
%s
  - name: fabric
    kind: router
  - name: vm2
    routes: ["10.1.0.0/24 via 10.2.0.1"]
    sysctls: ["net.ipv4.icmp_echo_ignore_broadcasts=0"]
    overcast: |
%s
links:
  - {a: vm1:eth0, a-addr: 10.1.0.2/24, b: fabric:z1, b-addr: 10.1.0.1/24}
  - {a: vm2:eth0, a-addr: 10.2.0.2/24, b: fabric:z2, b-addr: 10.2.0.1/24}
`

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

// TestOverlaySeed003: seed 003 without GRE. A sender on VM 1 to
// 232.8.8.8:1900 TTL 10 and an IGMPv3 receiver of (VM 1, 232.8.8.8) on
// VM 2: every packet arrives, over nothing but unicast UDP (the fabric
// drops and counts multicast); an ASM receiver of 239.192.0.29 on VM 2
// answers ping -t 10 from VM 1.
func TestOverlaySeed003(t *testing.T) {
	l := startLab(t, fmt.Sprintf(seed003, indent(overlayConf("10.1.0.2", "10.2.0.2"), "      "), indent(overlayConf("10.2.0.2", "10.1.0.2"), "      ")))
	loadFabric(t, l, "fabric")
	c1, c2 := api.NewClient(l.Socket("vm1")), api.NewClient(l.Socket("vm2"))
	eventually(t, 10*time.Second, "peers up", func() string { return overlayPeersUp(c1, 1) + overlayPeersUp(c2, 1) })

	r := startRecv(t, l, "vm2", "-g", "232.8.8.8", "-s", "10.1.0.2", "-p", "1900", "-q")
	eventually(t, 5*time.Second, "vm1 learns vm2 wants 232.8.8.8", func() string {
		var ps []api.OverlayPeer
		if err := c1.Get(api.PathOverlayPeers, &ps); err != nil {
			return err.Error()
		}
		if len(ps) != 1 || ps[0].Groups != 1 {
			return fmt.Sprintf("%+v", ps)
		}
		return ""
	})
	send(t, l, "vm1", "-g", "232.8.8.8", "-p", "1900", "-ttl", "10", "-count", "500", "-rate", "500")
	time.Sleep(300 * time.Millisecond)
	st := r.stop(t)
	pkts, lost, dups := st.Total()
	if pkts != 500 || lost != 0 || dups != 0 {
		t.Fatalf("vm2 got %d of 500 (lost %d, dups %d)", pkts, lost, dups)
	}
	if n := fabricCounter(t, l, "fabric", "mcast"); n != 0 {
		t.Logf("fabric dropped %d multicast packets (none were needed)", n)
	}

	// ping 239.192.0.29 with an ASM receiver on VM 2 (the seed's test).
	startRecv(t, l, "vm2", "-g", "239.192.0.29", "-q")
	eventually(t, 5*time.Second, "vm1 learns vm2 wants 239.192.0.29", func() string {
		var o api.Overlay
		var ps []api.OverlayPeer
		if err := c1.Get(api.PathOverlayPeers, &ps); err != nil {
			return err.Error()
		}
		_ = o
		if ps[0].Groups != 2 {
			return fmt.Sprintf("%+v", ps)
		}
		return ""
	})
	out, err := l.Exec("vm1", "ping", "-c", "3", "-i", "0.2", "-t", "10", "-W", "2", "239.192.0.29")
	if err != nil || !strings.Contains(out, "from 10.2.0.2") {
		t.Fatalf("ping 239.192.0.29 from vm1: %v\n%s", err, out)
	}
	t.Logf("ping: %s", lastLine(out))
	if n := fabricCounter(t, l, "fabric", "unicast"); n == 0 {
		t.Fatal("the fabric carried no unicast: the test did not cross it")
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
