package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"overcast/internal/lab"
)

// A lab the operator drives from the CLI: lab up on a lab that is up says
// so and leaves it running (a receiver keeps receiving), lab status, list
// and exec, show --lab --node; namespaces carry the lab's name.
func TestLabCLI(t *testing.T) {
	file := filepath.Join(t.TempDir(), "two.yaml")
	os.WriteFile(file, []byte(`name: twohosts
nodes:
  - name: h1
  - name: h2
  - name: m
    overcast: |
      mirror: {}
links:
  - {a: "h1:eth0", a-addr: 10.0.9.1/24, b: "h2:eth0", b-addr: 10.0.9.2/24}
`), 0o644)
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), exitStatus(t, err)
	}
	if out, code := run("lab", "up", file); code != 0 || !strings.Contains(out, "namespace twohosts-") || !strings.Contains(out, "overcast lab down "+file) {
		t.Fatalf("lab up: %d %s", code, out)
	}
	defer run("lab", "down", file)
	l, err := lab.Load(file, bin)
	if err != nil {
		t.Fatal(err)
	}
	r := startRecv(t, l, "h2", "-g", G, "-i", "eth0")
	time.Sleep(300 * time.Millisecond) // joined before the first packet
	snd := l.Command("h1", bin, "send", "-g", G, "-i", "eth0", "-ttl", "1", "-rate", "200", "-count", "1000")
	if err := snd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	out, code := run("lab", "up", file)
	if code == 0 || !strings.Contains(out, "lab twohosts is up already") || !strings.Contains(out, "--recreate") {
		t.Errorf("lab up on a lab that is up: exit %d, %s", code, out)
	}
	snd.Wait()
	time.Sleep(200 * time.Millisecond)
	st := r.stop(t)
	if p, lost, _ := st.Total(); p != 1000 || lost != 0 {
		t.Errorf("the receiver got %d of 1000 (%d lost) across the second lab up: it must keep the lab", p, lost)
	}
	if out, code := run("lab", "status", file); code != 0 || strings.Count(out, " up ") < 3 || !strings.Contains(out, "running (pid") || !strings.Contains(out, "--lab "+file+" --node m") {
		t.Errorf("lab status: %d %s", code, out)
	}
	if out, code := run("lab", "list"); code != 0 || !strings.Contains(out, "twohosts") || !strings.Contains(out, file) {
		t.Errorf("lab list: %d %s", code, out)
	}
	if out, code := run("lab", "exec", file, "h2", "ip", "-br", "addr", "show", "eth0"); code != 0 || !strings.Contains(out, "10.0.9.2/24") {
		t.Errorf("lab exec: %d %s", code, out)
	}
	if out, code := run("lab", "exec", file, "nosuch", "true"); code == 0 || !strings.Contains(out, "no node \"nosuch\" (nodes: h1, h2, m)") {
		t.Errorf("lab exec on a missing node: %d %s", code, out)
	}
	if out, code := run("show", "status", "--lab", file, "--node", "m", "--json"); code != 0 || !strings.Contains(out, `"pid"`) {
		t.Errorf("show --lab --node: %d %s", code, out)
	}
	if out, code := run("lab", "down", file); code != 0 {
		t.Errorf("lab down: %d %s", code, out)
	}
	if up := l.UpNodes(); len(up) != 0 {
		t.Errorf("after lab down: %v", up)
	}
}

// Lab file mistakes: file:line in the user's own file, the valid keys,
// no Go type names; an embedded daemon config's error at its line here.
func TestLabFileErrors(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"name: x\nnodes:\n  - name: a\n    kidn: router\n", `:4: unknown key "kidn" in a node; valid keys: name, kind, routes, loopback, sysctls, setup, overcast`},
		{"name: x\nnodez: []\n", `:2: unknown key "nodez" at the top; valid keys: name, nodes, links`},
		{"name: x\nnodes:\n  - name: a\n    routes: default via 10.0.0.1\n", `:4: `},
		{"name: x\nnodes:\n  - name: a\n    overcast: |\n      interfaces:\n        - name: eth0\n          igmp: {version: 7}\n", `:7: node a's overcast config: `},
		{"name: my lab\n", `:1: lab name "my lab": letters, digits and - only`},
	}
	for _, c := range cases {
		file := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(file, []byte(c.spec), 0o644)
		out, err := exec.Command(bin, "lab", "up", file).CombinedOutput()
		if exitStatus(t, err) == 0 || !strings.Contains(string(out), file+c.want) || strings.Contains(string(out), "lab.Node") || strings.Contains(string(out), "[]string") {
			t.Errorf("%q: %s; want %s%s", c.spec, out, file, c.want)
		}
	}
}

// A node's daemon config that fails only once the lab is up (an
// interface the links do not make) is reported at its line in the lab
// file, not in the generated config.
func TestLabDaemonErrorAtItsLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte(`name: badif
nodes:
  - name: r
    overcast: |
      interfaces:
        - name: lo
        - name: nosuch0
links: []
`), 0o644)
	out, err := exec.Command(bin, "lab", "up", file).CombinedOutput()
	defer exec.Command(bin, "lab", "down", file).Run()
	if exitStatus(t, err) == 0 || !strings.Contains(string(out), file+":7: node r's overcast config: ") || !strings.Contains(string(out), `"nosuch0" does not exist`) {
		t.Fatalf("lab up: %s", out)
	}
}
