// Package lab builds and removes topologies of network namespaces from a
// small YAML file: hosts, routers and switches, veth links with addresses,
// routes, sysctls, and which nodes run the Overcast daemon with what config.
//
// Namespace names carry the lab's name and a short hash of its file's
// absolute path (demo-3fa1-r1), so parallel labs never touch each other
// or other namespaces, and ip netns list says which lab a namespace is.
// The format is documented, with an example per feature, in docs/LAB.md.
package lab

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"overcast/internal/config"
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
	File   string // the lab file's absolute path
	// blocks is the line of each node's overcast: key in the lab file (its
	// config's line n is the file's line blocks[node]+n).
	blocks map[string]int
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

// Parse validates a lab spec; key is what makes its prefix unique (the
// file path). Errors name the file and line, and list the valid keys.
func Parse(key string, b []byte, bin string) (*Lab, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, yamlError(key, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root)
	bad := func(line int, format string, a ...any) error {
		at := key
		if line > 0 {
			at = fmt.Sprintf("%s:%d", key, line)
		}
		return fmt.Errorf("%s: %s", at, fmt.Sprintf(format, a...))
	}
	if s.Name == "" {
		return nil, bad(1, "the lab needs a name: (name: mylab)")
	}
	if !validName.MatchString(s.Name) {
		return nil, bad(keyLine(&root, "name"), "lab name %q: letters, digits and - only, at most 20 (it names the namespaces)", s.Name)
	}
	nodes := map[string]bool{}
	blocks := map[string]int{}
	for i, n := range s.Nodes {
		line := itemLine(&root, "nodes", i)
		if n.Name == "" || strings.ContainsAny(n.Name, ":/ ") {
			return nil, bad(line, "node name %q: a name without ':', '/' or spaces", n.Name)
		}
		if nodes[n.Name] {
			return nil, bad(line, "node %q twice", n.Name)
		}
		switch n.Kind {
		case "", "host", "router", "switch":
		default:
			return nil, bad(line, "node %s: kind %q: want host, router or switch", n.Name, n.Kind)
		}
		if n.Overcast != "" {
			// The daemon's config, checked now, with errors at their line
			// in this file (the interfaces exist only once the lab is up).
			block := itemValueLine(&root, "nodes", i, "overcast")
			blocks[n.Name] = block
			if _, err := config.Parse(key, []byte(n.Overcast), nil); err != nil {
				var ce *config.Error
				if errors.As(err, &ce) && ce.Line > 0 && block > 0 {
					return nil, fmt.Errorf("%s:%d: node %s's overcast config: %s", key, block+ce.Line, n.Name, ce.Reason)
				}
				return nil, bad(block, "node %s's overcast config: %v", n.Name, err)
			}
		}
		nodes[n.Name] = true
	}
	for i, l := range s.Links {
		for _, end := range []string{l.A, l.B} {
			node, ifn, ok := strings.Cut(end, ":")
			if !ok || !nodes[node] || ifn == "" || len(ifn) > 15 {
				return nil, bad(itemLine(&root, "links", i), "link end %q: want node:ifname with a known node and a name of at most 15 characters", end)
			}
		}
	}
	sum := sha1.Sum([]byte(key + "\x00" + s.Name))
	prefix := s.Name + "-" + hex.EncodeToString(sum[:2])
	return &Lab{Spec: s, Prefix: prefix, Dir: filepath.Join(StateRoot, prefix), Bin: bin, File: key, blocks: blocks}, nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,19}$`)

// yamlError turns the YAML decoder's message (Go type names, "field x
// not found in type lab.Node") into file:line, the key, and the valid keys.
func yamlError(file string, err error) error {
	msg := err.Error()
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		var valid []string
		switch m[3] {
		case "Spec":
			valid = yamlKeys(reflect.TypeFor[Spec]())
		case "Node":
			valid = yamlKeys(reflect.TypeFor[Node]())
		case "Link":
			valid = yamlKeys(reflect.TypeFor[Link]())
		}
		where := map[string]string{"Spec": "at the top", "Node": "in a node", "Link": "in a link"}[m[3]]
		return fmt.Errorf("%s:%s: unknown key %q %s; valid keys: %s", file, m[1], m[2], where, strings.Join(valid, ", "))
	}
	if m := typeError.FindStringSubmatch(msg); m != nil {
		want := map[string]string{"[]string": "a list, such as [a, b]", "string": "a string", "[]lab.Node": "a list of nodes", "[]lab.Link": "a list of links", "lab.Spec": "a mapping (name:, nodes:, links:)"}[m[3]]
		if want == "" {
			want = strings.TrimPrefix(m[3], "lab.")
		}
		return fmt.Errorf("%s:%s: %s is not %s", file, m[1], m[2], want)
	}
	return fmt.Errorf("%s: %s", file, strings.TrimPrefix(msg, "yaml: "))
}

var (
	unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type lab\.(\w+)`)
	typeError    = regexp.MustCompile(`line (\d+): cannot unmarshal \S+ (.*?) into (\S+)`)
)

func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// keyLine is the line of a top-level key.
func keyLine(root *yaml.Node, key string) int {
	if m := topMap(root); m != nil {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i].Line
			}
		}
	}
	return 0
}

func topMap(root *yaml.Node) *yaml.Node {
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 && root.Content[0].Kind == yaml.MappingNode {
		return root.Content[0]
	}
	return nil
}

func item(root *yaml.Node, list string, i int) *yaml.Node {
	m := topMap(root)
	if m == nil {
		return nil
	}
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value == list && m.Content[k+1].Kind == yaml.SequenceNode && i < len(m.Content[k+1].Content) {
			return m.Content[k+1].Content[i]
		}
	}
	return nil
}

// itemLine is the line of the i-th item of a top-level list.
func itemLine(root *yaml.Node, list string, i int) int {
	if n := item(root, list, i); n != nil {
		return n.Line
	}
	return 0
}

// itemValueLine is the line of a key of the i-th item of a list (for a
// block scalar, the line of its | or >: its text starts on the next).
func itemValueLine(root *yaml.Node, list string, i int, key string) int {
	n := item(root, list, i)
	if n == nil || n.Kind != yaml.MappingNode {
		return 0
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		if n.Content[k].Value == key {
			return n.Content[k].Line
		}
	}
	return 0
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
	if up := l.UpNodes(); len(up) > 0 {
		// Never tear down what this call did not build.
		return fmt.Errorf("%w: lab %s is up already (namespaces %s): overcast lab status %s; to rebuild it: overcast lab up --recreate %s",
			ErrUp, l.Spec.Name, strings.Join(up, ", "), l.File, l.File)
	}
	defer func() {
		if err != nil {
			l.Down()
		}
	}()
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	meta, _ := json.Marshal(labMeta{Name: l.Spec.Name, File: l.File, Prefix: l.Prefix})
	if err := os.WriteFile(filepath.Join(l.Dir, "lab.json"), meta, 0o644); err != nil {
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
		cfg = "api-socket: " + l.Socket(node) + "\n" + cfg // line 1; the block's lines follow
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
		if !alive(pid) { // exited (a zombie until reaped counts as gone)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	logb, _ := os.ReadFile(l.LogFile(node))
	msg := strings.TrimSpace(string(logb))
	// A config error names the generated file: say where it is in the
	// lab file instead.
	if m := regexp.MustCompile(regexp.QuoteMeta(l.ConfigFile(node)) + `:(\d+): (.*)`).FindStringSubmatch(msg); m != nil && l.blocks[node] > 0 {
		added := 0
		if !strings.Contains(n.Overcast, "api-socket:") {
			added = 1 // the api-socket line the lab put first
		}
		if line, _ := strconv.Atoi(m[1]); line > added {
			return fmt.Errorf("%s:%d: node %s's overcast config: %s (overcast on %s did not start)", l.File, l.blocks[node]+line-added, node, m[2], node)
		}
	}
	return fmt.Errorf("overcast on %s did not start: %s", node, msg)
}

// ErrUp: the lab is up already.
var ErrUp = errors.New("already up")

// labMeta is what lab list reads of a lab that is up.
type labMeta struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Prefix string `json:"prefix"`
}

// UpNodes lists the lab's namespaces that exist.
func (l *Lab) UpNodes() []string {
	var up []string
	for _, n := range l.Spec.Nodes {
		if _, err := os.Stat("/run/netns/" + l.NS(n.Name)); err == nil {
			up = append(up, l.NS(n.Name))
		}
	}
	return up
}

// NodeStatus is one node of lab status.
type NodeStatus struct {
	Node      string
	Namespace string
	Up        bool   // the namespace exists
	Daemon    string // "running (pid N)", "stopped", or "" for a node without one
	Socket    string // the daemon's API socket
}

// Status says which namespaces exist and which daemons run.
func (l *Lab) Status() []NodeStatus {
	var out []NodeStatus
	for _, n := range l.Spec.Nodes {
		st := NodeStatus{Node: n.Name, Namespace: l.NS(n.Name)}
		_, err := os.Stat("/run/netns/" + st.Namespace)
		st.Up = err == nil
		if n.Overcast != "" {
			st.Daemon, st.Socket = "stopped", l.Socket(n.Name)
			if b, err := os.ReadFile(filepath.Join(l.Dir, n.Name+".pid")); err == nil {
				if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && alive(pid) {
					st.Daemon = fmt.Sprintf("running (pid %d)", pid)
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// List names the labs that are up on this host (name, file, prefix).
func List() [][3]string {
	var out [][3]string
	dirs, _ := os.ReadDir(StateRoot)
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(StateRoot, d.Name(), "lab.json"))
		if err != nil {
			continue
		}
		var m labMeta
		if json.Unmarshal(b, &m) == nil {
			out = append(out, [3]string{m.Name, m.File, m.Prefix})
		}
	}
	return out
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
