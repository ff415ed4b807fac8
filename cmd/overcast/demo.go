package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
	"overcast/internal/tools/mcast"
)

// demoLab is the built-in topology: a source LAN and two receiver LANs around
// one Overcast router. A receiver on lan1 joins; nobody on lan2 does.
const demoLab = `name: demo
nodes:
  - name: src
    routes: ["default via 10.0.1.1"]
  - name: r1
    kind: router
    overcast: |
      interfaces:
        - name: eth0
        - name: lan1
        - name: lan2
  - name: rcv1
    routes: ["default via 10.0.2.1"]
  - name: rcv2
    routes: ["default via 10.0.3.1"]
links:
  - {a: "src:eth0",  a-addr: 10.0.1.10/24, b: "r1:eth0", b-addr: 10.0.1.1/24}
  - {a: "rcv1:eth0", a-addr: 10.0.2.10/24, b: "r1:lan1", b-addr: 10.0.2.1/24}
  - {a: "rcv2:eth0", a-addr: 10.0.3.10/24, b: "r1:lan2", b-addr: 10.0.3.1/24}
`

func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	count := fs.Int("count", 1000, "packets to send")
	rate := fs.Float64("rate", 500, "packets per second")
	keep := fs.Bool("keep", false, "leave the lab up afterwards")
	fs.Parse(args)
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo builds network namespaces: run it as root")
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "overcast-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "demo.yaml")
	if *keep {
		// A lab left up is taken down by its file: keep the file too.
		file = filepath.Join(filepath.Dir(lab.StateRoot), "demo.yaml")
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(file, []byte(demoLab), 0o644); err != nil {
		return err
	}
	l, err := lab.Load(file, bin)
	if err != nil {
		return err
	}
	step := func(format string, a ...any) { fmt.Printf("==> "+format+"\n", a...) }
	step("building the demo lab: src --- [r1: overcast] --- lan1 (rcv1, joins 239.1.1.1) / lan2 (rcv2, joins nothing)")
	if err := l.Up(); err != nil {
		return err
	}
	if !*keep {
		defer func() { step("tearing the lab down"); l.Down() }()
	} else {
		defer func() {
			step("the lab stays up (-keep):")
			fmt.Printf("    overcast lab status %s\n    overcast show mroute --lab %s --node r1\n    overcast lab exec %s rcv1 overcast recv -g 239.1.1.1\n    overcast lab down %s    # removes it all\n", file, file, file, file)
		}()
	}
	mcf, _ := l.Exec("r1", "cat", "/proc/sys/net/ipv4/conf/all/mc_forwarding")
	step("overcast is running on r1 (net.ipv4.conf.all.mc_forwarding = %s)", strings.TrimSpace(mcf))

	const group = "239.1.1.1"
	recv := func(node string, extra ...string) (*os.File, func() (mcast.Stats, error), error) {
		out, err := os.CreateTemp(dir, node)
		if err != nil {
			return nil, nil, err
		}
		cmd := l.Command(node, append([]string{bin, "recv", "-g", group, "-json", "-duration", "60s"}, extra...)...)
		cmd.Stdout = out
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		return out, func() (mcast.Stats, error) {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			var st mcast.Stats
			b, _ := os.ReadFile(out.Name())
			err := json.Unmarshal(b, &st)
			return st, err
		}, nil
	}
	_, stop1, err := recv("rcv1")
	if err != nil {
		return err
	}
	_, stop2, err := recv("rcv2", "-no-join")
	if err != nil {
		return err
	}
	c := api.NewClient(l.Socket("r1"))
	step("waiting for r1 to learn rcv1's IGMP membership")
	if err := waitFor(10*time.Second, func() bool {
		gs, err := c.IGMPGroups()
		if err != nil {
			return false
		}
		for _, g := range gs {
			if g.Group == group && g.Interface == "lan1" {
				return true
			}
		}
		return false
	}); err != nil {
		return fmt.Errorf("r1 never saw rcv1 join %s", group)
	}
	step("src sends %d packets to %s:5001 at %.0f pps (TTL 32)", *count, group, *rate)
	if out, err := l.Exec("src", bin, "send", "-g", group, "-count", fmt.Sprint(*count), "-rate", fmt.Sprint(*rate), "-ttl", "32"); err != nil {
		return err
	} else {
		fmt.Print("    ", out)
	}
	time.Sleep(500 * time.Millisecond) // let the last packets land
	st1, err1 := stop1()
	st2, err2 := stop2()
	if err1 != nil || err2 != nil {
		return fmt.Errorf("reading receiver results: %v %v", err1, err2)
	}

	step("who received what")
	p1, _, d1 := st1.Total()
	p2, _, _ := st2.Total()
	fmt.Printf("    %-6s %-28s %8s %8s %6s %5s\n", "host", "role", "sent", "received", "lost", "dups")
	fmt.Printf("    %-6s %-28s %8d %8d %6d %5d\n", "rcv1", "lan1, joined "+group, *count, p1, uint64(*count)-min(p1, uint64(*count)), d1)
	fmt.Printf("    %-6s %-28s %8d %8d %6s %5s\n", "rcv2", "lan2, not joined", *count, p2, "-", "-")

	for _, what := range []string{"igmp groups", "mroute", "mroute count"} {
		step("r1: overcast show " + what)
		if v, _, ok := api.FindView(strings.Fields(what)); ok {
			if rows, err := c.Fetch(v, ""); err == nil {
				v.Text(os.Stdout, v.Words, rows)
			}
		}
	}
	if p1 != uint64(*count) || p2 != 0 {
		return fmt.Errorf("demo FAILED: rcv1 got %d of %d, rcv2 got %d (want 0); r1's log: %s", p1, *count, p2, l.LogFile("r1"))
	}
	step("demo OK: rcv1 got every packet, rcv2's LAN got none")
	return nil
}

func waitFor(d time.Duration, f func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if f() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %s", d)
}
