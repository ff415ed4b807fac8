package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// frr runs zebra and pimd in a node's namespace (FRR 8.4, as in
// ../shared/FRR-BASELINE.md) and answers vtysh commands.
type frr struct {
	l    *lab.Lab
	node string
	dir  string
}

func startFRR(t testing.TB, l *lab.Lab, node, pimdConf string) *frr {
	t.Helper()
	return startFRRWith(t, l, node, pimdConf, "")
}

// startFRRWith also runs bgpd with bgpdConf when it is not empty.
func startFRRWith(t testing.TB, l *lab.Lab, node, pimdConf, bgpdConf string) *frr {
	t.Helper()
	dir, err := os.MkdirTemp("", "frr-")
	if err != nil {
		t.Fatal(err)
	}
	f := &frr{l: l, node: node, dir: dir}
	os.WriteFile(filepath.Join(dir, "zebra.conf"), []byte("hostname "+node+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pimd.conf"), []byte(pimdConf), 0o644)
	daemons := []string{"zebra", "pimd"}
	if bgpdConf != "" {
		// FRR's RPF reads only the unicast RIB unless told to look at
		// the multicast RIB first, where bgpd puts ipv4 multicast routes.
		os.WriteFile(filepath.Join(dir, "zebra.conf"), []byte("hostname "+node+"\nip multicast rpf-lookup-mode mrib-then-urib\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "bgpd.conf"), []byte(bgpdConf), 0o644)
		daemons = append(daemons, "bgpd")
	}
	if out, err := exec.Command("chown", "-R", "frr:frr", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	os.Chmod(dir, 0o777)
	for _, d := range daemons {
		out, err := l.Exec(node, "/usr/lib/frr/"+d, "-d", "-u", "frr", "-g", "frr",
			"-f", filepath.Join(dir, d+".conf"), "-i", filepath.Join(dir, d+".pid"),
			"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "-P", "0")
		if err != nil {
			t.Fatalf("%s: %v %s", d, err, out)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{"bgpd", "pimd", "zebra"} {
			if b, err := os.ReadFile(filepath.Join(dir, d+".pid")); err == nil {
				exec.Command("kill", strings.TrimSpace(string(b))).Run()
			}
		}
		time.Sleep(100 * time.Millisecond)
		os.RemoveAll(dir)
	})
	return f
}

func (f *frr) vtysh(cmd string) (string, error) {
	return f.l.Exec(f.node, "vtysh", "--vty_socket", f.dir, "-c", cmd)
}

// frrQuerier returns FRR's view of the querier on an interface.
func (f *frr) querier(ifname string) (local bool, addr string, err error) {
	out, err := f.vtysh("show ip igmp interface " + ifname + " json")
	if err != nil {
		return false, "", err
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return false, "", fmt.Errorf("%v: %s", err, out)
	}
	ifc, _ := m[ifname].(map[string]any)
	if ifc == nil {
		return false, "", fmt.Errorf("no %s in %s", ifname, out)
	}
	return ifc["querier"] == "local", fmt.Sprint(ifc["querierIp"]), nil
}

func querierLab(overcastAddr, frrAddr string) string {
	return fmt.Sprintf(`name: querier
nodes:
  - name: sw
    kind: switch
  - name: oc
    kind: router
    overcast: |
      interfaces:
        - name: lan
          igmp: {query-interval: 5s}
  - name: fr
    kind: router
  - name: host
    routes: ["default via %[1]s"]
links:
  - {a: "oc:lan",    a-addr: %[1]s/24, b: "sw:p1"}
  - {a: "fr:lan",    a-addr: %[2]s/24, b: "sw:p2"}
  - {a: "host:eth0", a-addr: 10.0.9.100/24, b: "sw:p3"}
`, overcastAddr, frrAddr)
}

const frrPimd = "interface lan\n ip igmp\n ip igmp query-interval 5\n ip pim\n"

// Querier election against FRR's pimd on the same LAN, both ways: the lower
// address queries, the other falls silent, and Overcast tracks membership either way.
func TestQuerierElectionWithFRR(t *testing.T) {
	for _, tc := range []struct {
		name, oc, fr string
		overcastWins bool
	}{
		{"overcast lower", "10.0.9.1", "10.0.9.2", true},
		{"frr lower", "10.0.9.3", "10.0.9.2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLab(t, querierLab(tc.oc, tc.fr))
			fr := startFRR(t, l, "fr", frrPimd)
			c := api.NewClient(l.Socket("oc"))
			r := startRecv(t, l, "host", "-g", G)
			defer r.stop(t)
			want := tc.oc
			if !tc.overcastWins {
				want = tc.fr
			}
			eventually(t, 20*time.Second, "both agree on the querier", func() string {
				is, err := c.IGMPInterfaces()
				if err != nil || len(is) != 1 {
					return fmt.Sprint(is, err)
				}
				frLocal, frAddr, err := fr.querier("lan")
				if err != nil {
					return err.Error()
				}
				if is[0].Querier != tc.overcastWins || is[0].QuerierAddress != want || frLocal == tc.overcastWins || frAddr != want {
					return fmt.Sprintf("overcast querier=%v (%s); frr local=%v (%s); want %s", is[0].Querier, is[0].QuerierAddress, frLocal, frAddr, want)
				}
				return ""
			})
			// The loser stops querying: over two FRR query intervals (5s),
			// Overcast's transmitted query count moves only if it is the querier.
			before := ifStats(t, c, "lan").TxQueries
			time.Sleep(6 * time.Second)
			after := ifStats(t, c, "lan").TxQueries
			if !tc.overcastWins && after != before {
				t.Errorf("overcast sent %d queries while not querier", after-before)
			}
			// Membership is tracked whoever queries.
			if s := hasGroup(c, "lan", G); s != "" {
				t.Fatalf("overcast lost membership: %s", s)
			}
		})
	}
}
