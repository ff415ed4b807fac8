package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"gopkg.in/yaml.v3"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// rpMesh is four RPs on one core switch (10.9.0.N/24), each the RP of
// its own domain; rp1 has two source LANs, a public-looking one
// (198.51.100.0/24) and a private one (10.0.1.0/24); rp4 has a stub link
// whose far end (10.8.0.9) is no MSDP peer. msdp[name] is the router's
// msdp section (indented under "      msdp:").
func rpMesh(msdp map[string]string) string {
	node := func(n string, ifs ...string) string {
		c := overcastPIM("10.9.0."+n[2:], "query-interval: 5s, query-response-interval: 1s", ifs...)
		if m, ok := msdp[n]; ok {
			c += "      msdp:\n" + m
		}
		return c
	}
	return `name: rpmesh
nodes:
  - name: src
    routes: ["default via 198.51.100.1"]
  - name: src2
    routes: ["default via 10.0.1.1"]
  - name: stub
  - name: core
    kind: switch
  - name: rp1
    kind: router
` + node("rp1", "core", "src", "src2") + `
  - name: rp2
    kind: router
    routes: ["198.51.100.0/24 via 10.9.0.1", "10.0.1.0/24 via 10.9.0.1"]
` + node("rp2", "core") + `
  - name: rp3
    kind: router
    routes: ["198.51.100.0/24 via 10.9.0.1", "10.0.1.0/24 via 10.9.0.1"]
` + node("rp3", "core") + `
  - name: rp4
    kind: router
    routes: ["198.51.100.0/24 via 10.9.0.1", "10.0.1.0/24 via 10.9.0.1"]
` + node("rp4", "core", "stub") + `
links:
  - {a: "src:eth0",  a-addr: 198.51.100.10/24, b: "rp1:src",  b-addr: 198.51.100.1/24}
  - {a: "src2:eth0", a-addr: 10.0.1.10/24,     b: "rp1:src2", b-addr: 10.0.1.1/24}
  - {a: "rp1:core",  a-addr: 10.9.0.1/24, b: "core:p1"}
  - {a: "rp2:core",  a-addr: 10.9.0.2/24, b: "core:p2"}
  - {a: "rp3:core",  a-addr: 10.9.0.3/24, b: "core:p3"}
  - {a: "rp4:core",  a-addr: 10.9.0.4/24, b: "core:p4"}
  - {a: "rp4:stub",  a-addr: 10.8.0.1/24, b: "stub:eth0", b-addr: 10.8.0.9/24}
`
}

// peers renders an msdp section: source and a peer list.
func peers(self string, ps ...string) string {
	return fmt.Sprintf("        source: 10.9.0.%s\n        peers:\n%s", self, strings.Join(ps, ""))
}

func peer(n string, extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return fmt.Sprintf("          - {address: 10.9.0.%s%s}\n", n, extra)
}

func msdpPeer(t *testing.T, l *lab.Lab, node, addr string) api.MSDPPeer {
	t.Helper()
	ps, err := api.NewClient(l.Socket(node)).MSDPPeers()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Address == addr {
			return p
		}
	}
	t.Fatalf("%s has no MSDP peer %s", node, addr)
	return api.MSDPPeer{}
}

func cached(t *testing.T, l *lab.Lab, node string) map[string]api.MSDPSA {
	t.Helper()
	sas, err := api.NewClient(l.Socket(node)).MSDPSACache()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.MSDPSA{}
	for _, s := range sas {
		if !s.Local {
			out[s.Source+","+s.Group] = s
		}
	}
	return out
}

// saWire counts MSDP SA messages on the wire by sender -> receiver
// (tshark's MSDP dissector on TCP 639), captured on node's iface.
type saWire struct {
	cmd *exec.Cmd
	out *strings.Builder
}

func captureSAs(t *testing.T, l *lab.Lab, node, iface string) *saWire {
	t.Helper()
	b := &strings.Builder{}
	cmd := l.Command(node, "tshark", "-l", "-n", "-i", iface, "-f", "tcp port 639", "-Y", "msdp.type == 1",
		"-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "msdp.type")
	cmd.Stdout = b
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // tshark opens the capture
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &saWire{cmd: cmd, out: b}
}

// stop ends the capture and returns SA messages per "src>dst". One TCP
// segment can hold several SA messages; tshark lists the types of all.
func (w *saWire) stop() map[string]int {
	time.Sleep(500 * time.Millisecond)
	w.cmd.Process.Signal(interruptSignal)
	w.cmd.Wait()
	out := map[string]int{}
	for _, line := range strings.Split(w.out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		out[f[0]+">"+f[1]] += strings.Count(f[2], "1")
	}
	return out
}

// A mesh group of three RPs (rp1, rp2, rp3) plus rp4 peered with rp2
// only: rp1's SA reaches rp2 and rp3 from rp1 directly, neither sends it
// back into the mesh (counted on the wire), and rp2 passes it on to rp4,
// outside the mesh.
func TestMSDPMeshGroup(t *testing.T) {
	mesh := "mesh-group: core"
	l := startLab(t, rpMesh(map[string]string{
		"rp1": peers("1", peer("2", mesh), peer("3", mesh)),
		"rp2": peers("2", peer("1", mesh), peer("3", mesh), peer("4", "")),
		"rp3": peers("3", peer("1", mesh), peer("2", mesh)),
		"rp4": peers("4", peer("2", "")),
	}))
	for _, p := range [][2]string{{"rp1", "10.9.0.2"}, {"rp1", "10.9.0.3"}, {"rp2", "10.9.0.3"}, {"rp2", "10.9.0.4"}} {
		msdpEstablished(t, l, p[0], p[1])
	}
	// The switch delivers unicast only to the port behind the address:
	// between them, rp2's and rp3's ports see every SA of the test.
	w2, w3 := captureSAs(t, l, "rp2", "core"), captureSAs(t, l, "rp3", "core")
	send(t, l, "src", "-g", "233.1.1.1", "-count", "20", "-rate", "100")
	k := "198.51.100.10,233.1.1.1"
	eventually(t, 5*time.Second, "SA cached at rp2, rp3, rp4", func() string {
		for _, n := range []string{"rp2", "rp3", "rp4"} {
			if _, ok := cached(t, l, n)[k]; !ok {
				return n + " has no SA"
			}
		}
		return ""
	})
	time.Sleep(time.Second)
	got := w2.stop()
	for k, n := range w3.stop() {
		if k != "10.9.0.2>10.9.0.3" && k != "10.9.0.3>10.9.0.2" { // seen on both ports
			got[k] += n
		} else if got[k] < n {
			got[k] = n
		}
	}
	t.Logf("SA messages on the core switch: %v", got)
	if got["10.9.0.1>10.9.0.2"] < 1 || got["10.9.0.1>10.9.0.3"] < 1 || got["10.9.0.2>10.9.0.4"] < 1 {
		t.Errorf("SAs missing on the wire: %v", got)
	}
	for _, back := range []string{"10.9.0.2>10.9.0.3", "10.9.0.3>10.9.0.2", "10.9.0.2>10.9.0.1", "10.9.0.3>10.9.0.1"} {
		if got[back] != 0 {
			t.Errorf("%d SA(s) sent back into the mesh %s", got[back], back)
		}
	}
	if c := cached(t, l, "rp4")[k]; c.Peer != "10.9.0.2" || c.RP != "10.9.0.1" {
		t.Errorf("rp4 cache: %+v", c)
	}
}

// The seed-002 policy: out of rp1 toward rp2, and into rp3 from rp1.
// SAs for the 10/8 source and for 239/8, 224.0.1.39 and 224.0.1.40 are
// neither advertised to rp2 nor accepted by rp3; 233.1.1.1 and 238.1.1.1
// from the public source pass both ways. (232/8 is SSM: no RP originates
// it at all.)
func TestMSDPScopedFilter(t *testing.T) {
	l := startLab(t, rpMesh(map[string]string{
		"rp1": peers("1", peer("2", "sa-filter-out: scoped"), peer("3", "")),
		"rp2": peers("2", peer("1", "")),
		"rp3": peers("3", peer("1", "sa-filter-in: scoped")),
	}))
	msdpEstablished(t, l, "rp1", "10.9.0.2")
	msdpEstablished(t, l, "rp1", "10.9.0.3")
	blocked := map[string]string{"src": "239.1.1.1 224.0.1.39 224.0.1.40", "src2": "233.1.1.1"}
	pass := []string{"233.1.1.1", "238.1.1.1"}
	for _, g := range pass {
		sendBackground(t, l, "src", "-g", g, "-count", "10", "-rate", "50")
	}
	for host, gs := range blocked {
		for _, g := range strings.Fields(gs) {
			sendBackground(t, l, host, "-g", g, "-count", "10", "-rate", "50")
		}
	}
	eventually(t, 5*time.Second, "the passing SAs at rp2 and rp3", func() string {
		for _, n := range []string{"rp2", "rp3"} {
			c := cached(t, l, n)
			for _, g := range pass {
				if _, ok := c["198.51.100.10,"+g]; !ok {
					return fmt.Sprintf("%s: %v", n, c)
				}
			}
		}
		return ""
	})
	time.Sleep(time.Second)
	for _, n := range []string{"rp2", "rp3"} {
		if c := cached(t, l, n); len(c) != len(pass) {
			t.Errorf("%s cached %d SAs, want only %v: %v", n, len(c), pass, c)
		}
	}
	orig, _ := api.NewClient(l.Socket("rp1")).MSDPSACache()
	if len(orig) != 6 {
		t.Errorf("rp1 originates %d SAs, want 6: %+v", len(orig), orig)
	}
	if p := msdpPeer(t, l, "rp1", "10.9.0.2"); p.FilteredOut != 4 {
		t.Errorf("rp1 -> rp2 filtered out %d entries, want 4", p.FilteredOut)
	}
	if p := msdpPeer(t, l, "rp3", "10.9.0.1"); p.FilteredIn != 4 {
		t.Errorf("rp3 <- rp1 filtered in %d entries, want 4", p.FilteredIn)
	}
}

// Peer-RPF at rp4, peered with rp2 and rp3 (no mesh) for SAs originated
// by rp1: rule iii picks one of them (the highest address reached through
// the route toward rp1), and the copy from the other is dropped and
// counted. With rp4's route to rp1 moved to a next hop that is no peer,
// no rule matches; a static RPF peer (rule v) and then a default peer
// (rule vi), each applied by reload, decide instead. rp2 takes SAs from
// rp1 by rule i.
func TestMSDPPeerRPF(t *testing.T) {
	cfg := map[string]string{
		"rp1": peers("1", peer("2", ""), peer("3", "")),
		"rp2": peers("2", peer("1", ""), peer("4", "")),
		"rp3": peers("3", peer("1", ""), peer("4", "")),
		"rp4": peers("4", peer("2", ""), peer("3", "")),
	}
	l := startLab(t, rpMesh(cfg))
	for _, p := range [][2]string{{"rp1", "10.9.0.2"}, {"rp1", "10.9.0.3"}, {"rp4", "10.9.0.2"}, {"rp4", "10.9.0.3"}} {
		msdpEstablished(t, l, p[0], p[1])
	}
	rpf := func(node string) api.MSDPRPF {
		v, err := api.NewClient(l.Socket(node)).MSDPRPFPeer("10.9.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := rpf("rp2"); v.Peer != "10.9.0.1" || !strings.HasPrefix(v.Rule, "i:") {
		t.Errorf("rp2: %+v, want rule i", v)
	}
	if v := rpf("rp4"); v.Peer != "10.9.0.3" || !strings.HasPrefix(v.Rule, "iii:") {
		t.Errorf("rp4: %+v, want rp3 by rule iii", v)
	}
	send(t, l, "src", "-g", "233.1.1.1", "-count", "20", "-rate", "100")
	k := "198.51.100.10,233.1.1.1"
	eventually(t, 5*time.Second, "rp4 caches the SA from rp3, drops rp2's", func() string {
		c, ok := cached(t, l, "rp4")[k]
		if !ok || c.Peer != "10.9.0.3" {
			return fmt.Sprintf("%+v", c)
		}
		if p := msdpPeer(t, l, "rp4", "10.9.0.2"); p.RPFFailures < 1 {
			return fmt.Sprintf("rp2's copy not counted: %+v", p)
		}
		return ""
	})
	if p := msdpPeer(t, l, "rp4", "10.9.0.3"); p.RPFFailures != 0 {
		t.Errorf("the RPF peer's SAs counted as failures: %+v", p)
	}
	// The route toward rp1 now leaves through the stub: no peer there.
	if _, err := l.Exec("rp4", "ip", "route", "add", "10.9.0.1/32", "via", "10.8.0.9"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "no RPF peer", func() string {
		if v := rpf("rp4"); v.Peer != "" || !strings.Contains(v.Reason, "no established peer matches") {
			return fmt.Sprintf("%+v", v)
		}
		return ""
	})
	reload := func(msdp string, want, rule string) {
		t.Helper()
		cfg["rp4"] = msdp
		writeNodeConfig(t, l, "rp4", rpMesh(cfg))
		eventually(t, 3*time.Second, "rp4 "+rule, func() string {
			if v := rpf("rp4"); v.Peer != want || !strings.HasPrefix(v.Rule, rule) {
				return fmt.Sprintf("%+v", v)
			}
			return ""
		})
	}
	reload(peers("4", peer("2", ""), peer("3", ""))+"        rpf-peers: [{rp: 10.9.0.0/24, peer: 10.9.0.2}]\n", "10.9.0.2", "v:")
	reload(peers("4", peer("2", ""), peer("3", "default: true")), "10.9.0.3", "vi:")
}

// TCP-MD5: rp1 and rp2 share a key and peer; rp3's key for rp1 differs,
// so that session never comes up, and the kernel counts the bad segments.
func TestMSDPMD5(t *testing.T) {
	l := startLab(t, rpMesh(map[string]string{
		"rp1": peers("1", peer("2", "password: right-key"), peer("3", "password: right-key")),
		"rp2": peers("2", peer("1", "password: right-key")),
		"rp3": peers("3", peer("1", "password: wrong-key")),
	}))
	msdpEstablished(t, l, "rp1", "10.9.0.2")
	if p := msdpPeer(t, l, "rp2", "10.9.0.1"); !p.MD5 {
		t.Errorf("rp2 says no MD5: %+v", p)
	}
	time.Sleep(5 * time.Second)
	p := msdpPeer(t, l, "rp1", "10.9.0.3")
	if p.State == "Established" {
		t.Fatalf("rp1 - rp3 came up with mismatched keys: %+v", p)
	}
	if p3 := msdpPeer(t, l, "rp3", "10.9.0.1"); p3.State == "Established" || p3.AuthFailures == 0 {
		t.Errorf("rp3: %+v, want down with MD5 failures counted", p3)
	}
	out, err := l.Exec("rp1", bin, "show", "msdp", "peer", "10.9.0.3", "-s", l.Socket("rp1"))
	if !strings.Contains(out, "Authentication: TCP-MD5") {
		t.Errorf("show msdp peer: %v\n%s", err, out)
	}
}

var interruptSignal = syscall.SIGINT

// writeNodeConfig rewrites node's daemon config from a new rendering of
// the lab and sends SIGHUP: the running daemon applies it as a diff.
func writeNodeConfig(t *testing.T, l *lab.Lab, node, labYAML string) {
	t.Helper()
	var spec struct {
		Nodes []struct {
			Name     string `yaml:"name"`
			Overcast string `yaml:"overcast"`
		} `yaml:"nodes"`
	}
	if err := yaml.Unmarshal([]byte(labYAML), &spec); err != nil {
		t.Fatal(err)
	}
	for _, n := range spec.Nodes {
		if n.Name == node {
			cfg := "api-socket: " + l.Socket(node) + "\n" + n.Overcast
			if err := os.WriteFile(l.ConfigFile(node), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := l.Signal(node, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no node %s", node)
}
