// Package lab builds and removes topologies of network namespaces from a
// small YAML file: hosts, routers and switches, veth links with addresses,
// routes, sysctls, and which nodes run the Overcast daemon with what config.
//
// Namespace names carry a prefix derived from the lab file's absolute path
// and name, so parallel labs never touch each other or other namespaces.
package lab

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// Spec is a lab file.
type Spec struct {
	Name  string `yaml:"name"`
	Nodes []Node `yaml:"nodes"`
	Links []Link `yaml:"links"`
}

// Node is a namespace.
type Node struct {
	Name     string   `yaml:"name"`
	Kind     string   `yaml:"kind"` // host (default), router, switch
	Routes   []string `yaml:"routes"`
	Loopback []string `yaml:"loopback"` // addresses on lo, e.g. an RP address 10.255.0.2/32
	Sysctls  []string `yaml:"sysctls"`  // key=value inside the namespace
	Setup    []string `yaml:"setup"`    // commands run in the namespace once links are up, before daemons start (bridges, nftables)
	Overcast string   `yaml:"overcast"` // daemon config (YAML text); empty = no daemon
}

// Link is a veth pair between two node interfaces: "node:ifname" and an
// optional address in CIDR form.
type Link struct {
	A     string `yaml:"a"`
	AAddr string `yaml:"a-addr"`
	B     string `yaml:"b"`
	BAddr string `yaml:"b-addr"`
}

// Lab is a loaded spec bound to its namespace prefix and state directory.
type Lab struct {
	Spec   Spec
	Prefix string
	Dir    string // state: configs, logs, pids, API sockets
	Bin    string // the overcast binary run as daemon
}

// StateRoot holds every lab's state directory.
var StateRoot = "/run/overcast/lab"

// Load reads a lab file. bin is the overcast binary to run on daemon nodes.
func Load(path, bin string) (*Lab, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, err
	}
	return Parse(abs, b, bin)
}

// Parse validates a lab spec; key is what makes its prefix unique (the file path).
func Parse(key string, b []byte, bin string) (*Lab, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if s.Name == "" {
		return nil, fmt.Errorf("%s: lab needs a name", key)
	}
	nodes := map[string]bool{}
	for _, n := range s.Nodes {
		if n.Name == "" || strings.ContainsAny(n.Name, ":/ ") {
			return nil, fmt.Errorf("%s: bad node name %q", key, n.Name)
		}
		if nodes[n.Name] {
			return nil, fmt.Errorf("%s: node %q twice", key, n.Name)
		}
		switch n.Kind {
		case "", "host", "router", "switch":
		default:
			return nil, fmt.Errorf("%s: node %s: kind %q: want host, router or switch", key, n.Name, n.Kind)
		}
		nodes[n.Name] = true
	}
	for _, l := range s.Links {
		for _, end := range []string{l.A, l.B} {
			node, ifn, ok := strings.Cut(end, ":")
			if !ok || !nodes[node] || ifn == "" || len(ifn) > 15 {
				return nil, fmt.Errorf("%s: link end %q: want node:ifname with a known node and a name of at most 15 characters", key, end)
			}
		}
	}
	sum := sha1.Sum([]byte(key + "\x00" + s.Name))
	prefix := "oc" + hex.EncodeToString(sum[:3])
	return &Lab{Spec: s, Prefix: prefix, Dir: filepath.Join(StateRoot, prefix), Bin: bin}, nil
}

// NS is the namespace name of a node.
func (l *Lab) NS(node string) string { return l.Prefix + "-" + node }

// Socket is the API socket of a node's daemon.
func (l *Lab) Socket(node string) string { return filepath.Join(l.Dir, node+".sock") }

// LogFile is where a node's daemon writes its log.
func (l *Lab) LogFile(node string) string { return filepath.Join(l.Dir, node+".log") }

// ConfigFile is a node's daemon config.
func (l *Lab) ConfigFile(node string) string { return filepath.Join(l.Dir, node+".yaml") }

func (l *Lab) node(name string) *Node {
	for i := range l.Spec.Nodes {
		if l.Spec.Nodes[i].Name == name {
			return &l.Spec.Nodes[i]
		}
	}
	return nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Exec runs a command in a node's namespace and returns its combined output.
func (l *Lab) Exec(node string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS(node)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %v: %s", strings.Join(args, " "), node, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Command prepares a command in a node's namespace.
func (l *Lab) Command(node string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.NS(node)}, args...)...)
}

// Up builds the topology and starts the daemons. On error it tears down
// what it built.
func (l *Lab) Up() (err error) {
	defer func() {
		if err != nil {
			l.Down()
		}
	}()
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	for _, n := range l.Spec.Nodes {
		ns := l.NS(n.Name)
		if err := run("ip", "netns", "add", ns); err != nil {
			return err
		}
		if err := run("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		for _, a := range n.Loopback {
			if err := run("ip", "-n", ns, "addr", "add", a, "dev", "lo"); err != nil {
				return err
			}
		}
		sysctls := []string{"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.disable_ipv6=1"}
		if n.Kind == "router" {
			sysctls = append(sysctls, "net.ipv4.ip_forward=1")
		}
		for _, s := range append(sysctls, n.Sysctls...) {
			if _, err := l.Exec(n.Name, "sysctl", "-qw", s); err != nil {
				return err
			}
		}
		if n.Kind == "switch" {
			if err := run("ip", "-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"); err != nil {
				return err
			}
			if err := run("ip", "-n", ns, "link", "set", "br0", "up"); err != nil {
				return err
			}
		}
	}
	for _, lk := range l.Spec.Links {
		an, ai, _ := strings.Cut(lk.A, ":")
		bn, bi, _ := strings.Cut(lk.B, ":")
		if err := run("ip", "link", "add", ai, "netns", l.NS(an), "type", "veth", "peer", "name", bi, "netns", l.NS(bn)); err != nil {
			return err
		}
		for _, e := range []struct{ node, ifn, addr string }{{an, ai, lk.AAddr}, {bn, bi, lk.BAddr}} {
			ns := l.NS(e.node)
			if l.node(e.node).Kind == "switch" {
				if err := run("ip", "-n", ns, "link", "set", e.ifn, "master", "br0"); err != nil {
					return err
				}
			}
			if e.addr != "" {
				if err := run("ip", "-n", ns, "addr", "add", e.addr, "dev", e.ifn); err != nil {
					return err
				}
			}
			if err := run("ip", "-n", ns, "link", "set", e.ifn, "up"); err != nil {
				return err
			}
		}
	}
	for _, n := range l.Spec.Nodes {
		for _, r := range n.Routes {
			if err := run(append([]string{"ip", "-n", l.NS(n.Name), "route", "add"}, strings.Fields(r)...)...); err != nil {
				return err
			}
		}
	}
	for _, n := range l.Spec.Nodes {
		for _, c := range n.Setup {
			if out, err := l.Exec(n.Name, "sh", "-c", c); err != nil {
				return fmt.Errorf("node %s setup %q: %v: %s", n.Name, c, err, strings.TrimSpace(out))
			}
		}
	}
	for _, n := range l.Spec.Nodes {
		if n.Overcast != "" {
			if err := l.StartDaemon(n.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// StartDaemon writes a node's config (with its API socket filled in) and
// starts `overcast daemon` in its namespace.
func (l *Lab) StartDaemon(node string) error {
	n := l.node(node)
	if n == nil {
		return fmt.Errorf("no node %s", node)
	}
	cfg := n.Overcast
	if !strings.Contains(cfg, "api-socket:") {
		cfg = "api-socket: " + l.Socket(node) + "\n" + cfg
	}
	if err := os.WriteFile(l.ConfigFile(node), []byte(cfg), 0o644); err != nil {
		return err
	}
	os.Remove(l.Socket(node)) // a killed daemon's socket: waiting for it below would not wait
	logf, err := os.OpenFile(l.LogFile(node), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := l.Command(node, l.Bin, "daemon", "-c", l.ConfigFile(node))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	if err := os.WriteFile(filepath.Join(l.Dir, node+".pid"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return err
	}
	// Wait for the API socket so callers can talk to it at once.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(l.Socket(node)); err == nil {
			return nil
		}
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	logb, _ := os.ReadFile(l.LogFile(node))
	return fmt.Errorf("overcast on %s did not start: %s", node, strings.TrimSpace(string(logb)))
}

// StopDaemon stops a node's daemon (SIGTERM, then SIGKILL) and waits for it to go.
func (l *Lab) StopDaemon(node string) error {
	pidFile := filepath.Join(l.Dir, node+".pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		return errors.New("bad pid file")
	}
	// `ip netns exec` execs the daemon, so the pid is the daemon's own.
	syscall.Kill(pid, syscall.SIGTERM)
	for range 100 {
		if !alive(pid) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	os.Remove(pidFile)
	return nil
}

// alive says whether a process runs (a zombie no longer does: its parent,
// which released it, may reap it late).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// Signal sends a signal to a node's daemon.
func (l *Lab) Signal(node string, sig syscall.Signal) error {
	b, err := os.ReadFile(filepath.Join(l.Dir, node+".pid"))
	if err != nil {
		return err
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return syscall.Kill(pid, sig)
}

// Down stops daemons and deletes the namespaces (and so every link). It is
// safe to call on a lab that is partly or not at all up.
func (l *Lab) Down() error {
	var errs []error
	for _, n := range l.Spec.Nodes {
		if _, err := os.Stat(filepath.Join(l.Dir, n.Name+".pid")); err == nil {
			l.StopDaemon(n.Name)
		}
		// Kill anything else still running in the namespace (receivers, senders).
		if out, err := exec.Command("ip", "netns", "pids", l.NS(n.Name)).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if _, err := os.Stat("/run/netns/" + l.NS(n.Name)); err == nil {
			if err := run("ip", "netns", "del", l.NS(n.Name)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	os.RemoveAll(l.Dir)
	return errors.Join(errs...)
}
