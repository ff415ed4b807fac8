package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
)

// TestOperatorErrors: each mistake an operator makes gets a message that
// names the cause and the fix, and a non-zero exit status. A daemon with
// no interfaces (a mirror section, no services) runs in a namespace: it
// needs no multicast routing.
func TestOperatorErrors(t *testing.T) {
	l := startLab(t, `
name: clierr
nodes:
  - name: h
    overcast: |
      mirror: {}
links: []
`)
	sock := l.Socket("h")
	dir, err := os.MkdirTemp("", "overcast-cli-") // readable by the unprivileged user below
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	cfg := filepath.Join(dir, "lo.yaml")
	os.WriteFile(cfg, []byte("api-socket: "+filepath.Join(dir, "nobody.sock")+"\ninterfaces:\n  - name: lo\n    igmp: {}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("interfaces:\n  - name: nosuch0\n    igmp: {}\n"), 0o644)
	asNobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin}
	// A UDP port held by a socket that does not share it.
	hold := exec.Command("ip", "netns", "exec", l.NS("h"), "/usr/bin/python3", "-c",
		"import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5999)); time.sleep(30)")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer hold.Process.Kill()
	time.Sleep(300 * time.Millisecond)

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"show with no daemon", []string{bin, "show", "mroute", "--socket", filepath.Join(dir, "none.sock")},
			[]string{"no daemon answers on " + filepath.Join(dir, "none.sock"), "overcast daemon -c", "--socket"}},
		{"show as a user", append(asNobody, "show", "status", "--socket", sock),
			[]string{"permission denied", "run this as root"}},
		{"show rpf of a word", []string{bin, "show", "rpf", "foo", "--socket", sock},
			[]string{`"foo" is not an IPv4 address`, "such as 10.0.1.10"}},
		{"show mroute of a unicast group", []string{bin, "show", "ip", "mroute", "10.1.1.1", "--socket", sock},
			[]string{`"10.1.1.1" is not an IPv4 multicast group`, "show mroute 239.1.1.1 10.0.1.10"}},
		{"show rpf without a route", []string{bin, "show", "ip", "rpf", "10.9.9.9", "--socket", sock},
			[]string{"RPF information for ? (10.9.9.9) failed, no route exists"}},
		{"show pim without PIM", []string{bin, "show", "ip", "pim", "neighbor", "-s", sock},
			[]string{"PIM is not running on this daemon", "add a pim: section"}},
		{"the daemon as a user", append(asNobody, "daemon", cfg),
			[]string{"operation not permitted", "needs root, or the capabilities CAP_NET_ADMIN and CAP_NET_RAW"}},
		{"two config files", []string{bin, "daemon", "-c", cfg, bad}, []string{"two config files", "give one"}},
		{"check names an interface that is not here", []string{bin, "check", bad},
			[]string{bad + ":2:", `interface "nosuch0" does not exist`, "this host has: ", "--any-host"}},
		{"send without a group", []string{bin, "send", "--count", "1"}, []string{"which group?", "--group"}},
		{"restart onto a binary that cannot run", []string{bin, "restart", "--binary", "/bin/false", "--socket", sock},
			[]string{"restart refused, still running", "/bin/false --version", "give a working overcast binary"}},
		{"stop with an argument", []string{bin, "stop", "now", "--socket", sock}, []string{"unexpected arguments", "overcast stop [--flush]"}},
		{"recv on a port in use", []string{"ip", "netns", "exec", l.NS("h"), bin, "recv", "--group", "239.1.1.1", "--port", "5999", "--duration", "1s"},
			[]string{"UDP port 5999 is taken", "--port"}},
	}
	for _, c := range cases {
		out, err := exec.Command(c.args[0], c.args[1:]...).CombinedOutput()
		code := exitStatus(t, err)
		ok := code != 0 && !strings.Contains(string(out), "http://") && !strings.Contains(string(out), "/v1/")
		for _, w := range c.want {
			ok = ok && strings.Contains(string(out), w)
		}
		if !ok {
			t.Errorf("%s: exit %d, %q; want non-zero and %q (and no internal URL)", c.name, code, out, c.want)
		}
	}
	// What must work: the daemon whose restart was refused still runs; the
	// one argument as the config, --version, both dashes.
	if _, err := api.NewClient(sock).Status(); err != nil {
		t.Errorf("after a refused restart the daemon does not answer: %v", err)
	}
	if out, err := exec.Command(bin, "check", "--any-host", bad).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("check --any-host FILE: %v %s", err, out)
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "overcast ") {
		t.Errorf("--version: %v %s", err, out)
	}
	for _, flag := range []string{"-json", "--json"} {
		if out, err := exec.Command(bin, "show", "status", flag, "--socket", sock).CombinedOutput(); err != nil || !strings.Contains(string(out), `"pid"`) {
			t.Errorf("show status %s: %v %s", flag, err, out)
		}
	}
}

// A second router on a namespace whose routing socket Overcast holds is
// told which process holds it.
func TestSecondRouterToldWhoHoldsTheSocket(t *testing.T) {
	needMrouting(t)
	l := startLab(t, routerLab(""))
	cfg := filepath.Join(t.TempDir(), "second.yaml")
	os.WriteFile(cfg, []byte("api-socket: "+filepath.Join(t.TempDir(), "second.sock")+"\ninterfaces:\n  - name: lan1\n"), 0o644)
	out, err := l.Exec("r1", bin, "daemon", cfg)
	if err == nil || !strings.Contains(out, "(overcast) holds this network namespace's multicast routing socket") || !strings.Contains(out, "stop it first") {
		t.Fatalf("a second daemon: %v\n%s", err, out)
	}
}

// demo -keep leaves the lab up and prints how to reach it and remove it;
// the printed teardown removes everything.
func TestDemoKeepThenTeardown(t *testing.T) {
	needMrouting(t)
	out, err := exec.Command(bin, "demo", "-keep", "-count", "100", "-rate", "500").CombinedOutput()
	if err != nil {
		t.Fatalf("demo -keep: %v\n%s", err, out)
	}
	var down []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "overcast" && f[1] == "lab" && f[2] == "down" {
			down = f[:4]
		}
	}
	if down == nil || !strings.Contains(string(out), "overcast show mroute --lab ") {
		t.Fatalf("demo -keep printed no way to reach and remove the lab:\n%s", out)
	}
	if ns, _ := exec.Command("ip", "netns", "list").Output(); !strings.Contains(string(ns), "demo-") {
		t.Fatalf("demo -keep left no namespaces: %s", ns)
	}
	if o, err := exec.Command(bin, down[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", strings.Join(down, " "), err, o)
	}
	if ns, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(ns), "demo-") {
		t.Fatalf("after the printed teardown: %s", ns)
	}
}
