// Command overcast is the one binary: the router daemon, the show commands
// over its local API, the lab builder, the demo and the operator tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/daemon"
	"overcast/internal/dataplane"
	"overcast/internal/kernel"
	"overcast/internal/lab"
	"overcast/internal/mbgp"
	"overcast/internal/mbgp/gobgp"
	"overcast/internal/overlay/etcdstore"
	"overcast/internal/tools/doctor"
	"overcast/internal/tools/mcast"
)

const usage = `overcast: IP multicast router and toolkit

  overcast daemon [-c] overcast.yaml        run the router (SIGHUP reloads the config; SIGUSR2 restarts it in place;
                                            SIGTERM stops it, leaving the kernel's routes for the next start)
  overcast restart [--binary PATH]          hand the running router over to a successor (an upgrade with --binary)
                                            without a packet lost: the kernel keeps forwarding, neighbours keep state
  overcast stop [--flush]                   stop the router (PIM says goodbye); --flush removes the kernel's routes too
  overcast flush                            remove the routes and VIFs a stopped router left (before another router starts)
  overcast check [-c] overcast.yaml         validate a config file (and its interfaces on this host) and exit
  overcast show WHAT [--json] [--socket PATH]   the daemon's state, IOS-style (each also after "ip":
                                            show ip mroute); WHAT is one of:
%s
  overcast clear ip mroute [GROUP|*]        forget the group's routes (all with *): the next packet rebuilds each
  overcast clear ip igmp group [GROUP|*]    forget IGMP membership (static groups stay); members are queried again
  overcast overlay peer add|del ADDR[:PORT] add or remove an overlay peer at run time (--socket PATH)
  overcast mirror service|flow add|del ...  tap services (where copies go) and flows (what is copied) at run time
  overcast mirror collect [--listen :4789] [--pcap DIR] [--inject IF]   receive VXLAN copies: pcapng per session
  overcast lab up|down FILE                 build or remove a namespace topology
  overcast demo                             run the built-in demo (needs root)
  overcast send --group G[,G2|+N] [--port P] [--interface IF] [--ttl N] [--rate PPS] [--count N]
  overcast recv --group G[,..] [--source S] [--port P] [--interface IF] [--duration D] [--json]
  overcast ping --group G [--count N] [--ttl N] [--interface IF] [--expect N]   who receives this group?
  overcast ping --respond --group G[,..]    answer probes (and ssmping/asmping clients)
  overcast doctor [-i IF] [--group G [--source S]] [--port P] [--size N] [--listen D]   why does nothing arrive? OK/WARN/FAIL with fixes
  overcast addr GROUP | check FILE | glop AS|GROUP | ubm PREFIX   address tools (--json)
  overcast version | --version

Flags take one or two dashes (--json and -json are the same); short forms
(-g, -s, -p, -i, -c) stay accepted.
`

// usageText is the usage with the show views listed from the registry.
func usageText() string {
	var lines []string
	for _, w := range strings.Split(api.ViewList(), ", ") {
		lines = append(lines, "      "+w)
	}
	return fmt.Sprintf(usage, strings.Join(lines, "\n"))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usageText())
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "daemon":
		err = runDaemon(os.Args[2:])
	case "check":
		err = runCheck(os.Args[2:])
	case "show":
		err = runShow(os.Args[2:])
	case "overlay":
		err = runOverlay(os.Args[2:])
	case "mirror":
		err = runMirror(os.Args[2:])
	case "lab":
		err = runLab(os.Args[2:])
	case "clear":
		err = runClear(os.Args[2:])
	case "restart":
		err = runRestart(os.Args[2:])
	case "stop":
		err = runStop(os.Args[2:])
	case "flush":
		err = runFlush(os.Args[2:])
	case "demo":
		err = runDemo(os.Args[2:])
	case "send":
		err = runSend(os.Args[2:])
	case "recv":
		err = runRecv(os.Args[2:])
	case "doctor":
		err = runDoctor(os.Args[2:])
	case "ping":
		err = runPing(os.Args[2:])
	case "addr":
		err = runAddr(os.Args[2:])
	case "version", "--version", "-version", "-v":
		fmt.Println("overcast", daemon.Version)
	case "help", "-h", "--help":
		fmt.Print(usageText())
	default:
		fmt.Fprintf(os.Stderr, "overcast: unknown command %q\n\n%s", os.Args[1], usageText())
		os.Exit(2)
	}
	if err != nil {
		// An exitCode has already said what failed; it only sets the status.
		var ec exitCode
		if ok := asExit(err, &ec); ok {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "overcast:", err)
		os.Exit(1)
	}
}

// printJSON prints a view's or tool's answer in Overcast's one JSON form
// (api.Marshal: docs/api.schema.json).
func printJSON(v any) error {
	b, err := api.MarshalIndent(v)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(b, '\n'))
	return err
}

// doctorReport is doctor --json.
type doctorReport struct {
	Findings []doctor.Finding `json:"findings"`
	Facts    doctor.Facts     `json:"facts"`
}

type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func asExit(err error, ec *exitCode) bool {
	e, ok := err.(exitCode)
	if ok {
		*ec = e
	}
	return ok
}

const daemonGCPercent = 25

func runDaemon(args []string) error {
	fs := flag.NewFlagSet("daemon", flag.ExitOnError)
	cfg := fs.String("c", "/etc/overcast.yaml", "config file (also --config, or the one argument)")
	fs.StringVar(cfg, "config", "/etc/overcast.yaml", "config file")
	fs.Parse(args)
	if err := configArg(fs, cfg, "daemon"); err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// The daemon's heap is almost all long-lived protocol state, and
		// at steady state it allocates little, so collecting at 25%
		// growth (not Go's default 100%) keeps resident memory near the
		// live state for little CPU (README, Measured). GOGC overrides.
		debug.SetGCPercent(daemonGCPercent)
	}
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ho, err := takeHandover()
	if err == nil && ho == nil {
		ho, err = takeStored() // systemctl restart: systemd's fd store
	}
	if err != nil {
		return err
	}
	var opts kernel.Options
	var state *daemon.Handover
	if ho != nil {
		opts.RoutingFD, state = ho.RoutingFD, &ho.State
	}
	host, err := kernel.Open(log, opts)
	if err != nil {
		return err
	}
	restarting := false
	defer func() {
		if !restarting {
			host.Close() // forwarding stops; the routes stay for the next start
		}
	}()
	var streams *kernel.Streams
	defer func() {
		if streams != nil {
			streams.Shutdown()
		}
	}()
	d, err := daemon.New(*cfg, daemon.Env{
		Forwarder: host, IO: host, Links: host, Routing: host.Routing(),
		Start: host.Start, VIF: host.VIF, PID: os.Getpid(),
		Streams: func(sink dataplane.StreamSink) dataplane.Streams {
			streams = kernel.NewStreams(sink, log)
			return streams
		},
		MBGP:     func(onChange func()) mbgp.Speaker { return gobgp.New(log, onChange) },
		Overlay:  host.Overlay,
		Mirror:   func() (dataplane.Mirror, error) { return kernel.NewMirror(log) },
		Handover: state, CheckSuccessor: checkSuccessor,
		Ready:   func() { sdNotify("READY=1") },
		Quiesce: host.Quiesce,
		PeerStore: func(c daemon.PeerStoreConfig, update func([]netip.AddrPort, string)) (io.Closer, error) {
			return etcdstore.Start(etcdstore.Config{Endpoints: c.Endpoints, Prefix: c.Prefix, TTL: c.TTL, Self: c.Self}, log, update)
		},
	}, log, level)
	if err != nil {
		return err
	}
	stopSignals := []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	if fdStore() {
		// Under systemd with an fd store a SIGTERM may be a restart: the
		// routing socket goes into the store, and no goodbye is said.
		stopSignals = []os.Signal{syscall.SIGINT}
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			if err := d.RequestHandover(); err != nil {
				log.Warn("SIGTERM: handover to systemd's fd store", "err", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	if path := os.Getenv("OVERCAST_CPUPROFILE"); path != "" {
		// For developers: a CPU profile of the daemon's whole run, written
		// to PATH.PID when it stops (go tool pprof).
		f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if path := os.Getenv("OVERCAST_MEMPROFILE"); path != "" {
		// For developers: the live heap when the daemon stops, and at
		// each SIGUSR1 (PATH.PID.N).
		n := 0
		write := func(name string) {
			if f, err := os.Create(name); err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
			runtime.KeepAlive(d) // profile the daemon's state, not an emptied heap
		}
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				n++
				write(fmt.Sprintf("%s.%d.%d", path, os.Getpid(), n))
			}
		}()
		defer write(fmt.Sprintf("%s.%d", path, os.Getpid()))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	self, _ := os.Executable()
	d.SetDefaultBinary(self)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	go func() {
		for range usr2 { // a planned restart of the same binary (an upgrade, if it was replaced)
			if err := d.RequestRestart(self); err != nil {
				log.Warn("SIGUSR2: restart refused", "err", err)
			}
		}
	}()
	err = d.Run(ctx, hup)
	if !errors.Is(err, daemon.ErrRestart) {
		return err
	}
	// Hand over: the routing socket stays open across the exec, or goes
	// into systemd's fd store.
	bin := d.RestartBinary()
	fd, err := host.RoutingFD()
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if bin == "" {
		if fd == 0 {
			return nil // no routing socket: nothing to keep
		}
		if err := storeHandover(fd, d.HandoverState(time.Now())); err != nil {
			return fmt.Errorf("handing the routing socket to systemd's fd store: %w (the routes stay; the next start resumes them)", err)
		}
		log.Info("overcast stopped: the routing socket is in systemd's fd store for the next start")
		return nil
	}
	restarting = true
	if streams != nil {
		streams.Shutdown()
		streams = nil
	}
	err = execSuccessor(bin, handover{RoutingFD: fd, State: d.HandoverState(time.Now())})
	restarting = false
	return err
}

func runCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	cfg := fs.String("c", "/etc/overcast.yaml", "config file (also --config, or the one argument)")
	fs.StringVar(cfg, "config", "/etc/overcast.yaml", "config file")
	anyHost := fs.Bool("any-host", false, "do not check the interfaces exist on this host (a config for another router)")
	fs.Parse(args)
	if err := configArg(fs, cfg, "check"); err != nil {
		return err
	}
	exists := func(name string) bool { _, err := net.InterfaceByName(name); return err == nil }
	if *anyHost {
		exists = nil
	}
	if _, err := config.Load(*cfg, exists); err != nil {
		if exists != nil && strings.Contains(err.Error(), "does not exist") {
			return fmt.Errorf("%w (this host has: %s; check a config for another router with --any-host)", err, strings.Join(hostInterfaces(), ", "))
		}
		return err
	}
	fmt.Println(*cfg + ": ok")
	return nil
}

// configArg takes a config file given as the one argument (overcast
// daemon FILE), and refuses a second one.
func configArg(fs *flag.FlagSet, cfg *string, cmd string) error {
	switch fs.NArg() {
	case 0:
		return nil
	case 1:
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "c" || f.Name == "config" })
		if set && *cfg != fs.Arg(0) {
			return fmt.Errorf("%s: two config files (-c %s and %s): give one", cmd, *cfg, fs.Arg(0))
		}
		*cfg = fs.Arg(0)
		return nil
	}
	return fmt.Errorf("%s: unexpected arguments %q: overcast %s [-c] FILE", cmd, fs.Args(), cmd)
}

func hasDaemon(l *lab.Lab, node string) bool {
	for _, n := range l.Spec.Nodes {
		if n.Name == node && n.Overcast != "" {
			return true
		}
	}
	return false
}

// hostInterfaces names this host's interfaces.
func hostInterfaces() []string {
	var names []string
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			names = append(names, i.Name)
		}
	}
	return names
}

// splitFlags lets flags come after positional words (`show mroute --json`).
func splitFlags(args []string) (words, flags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if (a == "-s" || a == "--s" || a == "-socket" || a == "--socket" || a == "-lab" || a == "--lab" || a == "-node" || a == "--node") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		words = append(words, a)
	}
	return
}

// daemonFlags name the daemon a command asks: --socket PATH (-s), or a
// lab node's with --lab FILE --node NODE.
type daemonFlags struct{ sock, lab, node *string }

func addDaemonFlags(fs *flag.FlagSet) daemonFlags {
	f := daemonFlags{sock: fs.String("s", config.DefaultAPISocket, "daemon API socket (also --socket)"),
		lab: fs.String("lab", "", "a lab file: ask a lab node's daemon (with --node)"), node: fs.String("node", "", "the lab node whose daemon to ask (with --lab)")}
	fs.StringVar(f.sock, "socket", config.DefaultAPISocket, "daemon API socket")
	return f
}

// client is the API client for the daemon the flags name.
func (f daemonFlags) client() (*api.Client, error) {
	if *f.lab == "" && *f.node == "" {
		return api.NewClient(*f.sock), nil
	}
	if *f.lab == "" || *f.node == "" {
		return nil, errors.New("--lab FILE and --node NODE go together")
	}
	l, err := lab.Load(*f.lab, "")
	if err != nil {
		return nil, err
	}
	if !hasDaemon(l, *f.node) {
		return nil, fmt.Errorf("lab %s has no node %q running overcast (nodes: %s)", l.Spec.Name, *f.node, nodeNames(l))
	}
	return api.NewClient(l.Socket(*f.node)), nil
}

func runShow(args []string) error {
	words, flags := splitFlags(args)
	fs := flag.NewFlagSet("show", flag.ExitOnError)
	df := addDaemonFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Parse(flags)
	c, err := df.client()
	if err != nil {
		return err
	}
	what := strings.Join(words, " ")
	view, arg, ok := api.FindView(words)
	if !ok {
		return fmt.Errorf("show %q: want one of %s", what, api.ViewList())
	}
	v, err := c.Fetch(view, arg)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := printJSON(v); err != nil {
			return err
		}
		if r, ok := v.(*api.RPF); ok && !r.Found {
			return exitCode(1)
		}
		return nil
	}
	view.Text(os.Stdout, view.Words, v)
	if r, ok := v.(*api.RPF); ok && !r.Found {
		return exitCode(1) // no route: scripts see the RPF failure (the text said so)
	}
	return nil
}

func runOverlay(args []string) error {
	words, flags := splitFlags(args)
	fs := flag.NewFlagSet("overlay", flag.ExitOnError)
	df := addDaemonFlags(fs)
	fs.Parse(flags)
	if len(words) != 3 || words[0] != "peer" || (words[1] != "add" && words[1] != "del") {
		return errors.New("usage: overcast overlay peer add|del ADDR[:PORT] [-s SOCKET]")
	}
	path := api.PathOverlayPeerAdd
	if words[1] == "del" {
		path = api.PathOverlayPeerDel
	}
	c, err := df.client()
	if err != nil {
		return err
	}
	var out api.OverlayPeerChange
	if err := c.Post(path, words[2], &out); err != nil {
		return err
	}
	fmt.Printf("overlay peer %s %s (%d peers)\n", out.Peer, out.Action, out.Peers)
	return nil
}

const labUsage = `usage: overcast lab up [--recreate] FILE | down FILE | status FILE | list | exec FILE NODE CMD [ARGS...]
  (the lab file's format: docs/LAB.md; a node's daemon: overcast show ... --lab FILE --node NODE)`

// runClear is clear ip mroute [GROUP|*] and clear ip igmp group [GROUP|*].
func runClear(args []string) error {
	words, flags := splitFlags(args)
	fs := flag.NewFlagSet("clear", flag.ExitOnError)
	df := addDaemonFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Parse(flags)
	if len(words) > 0 && words[0] == "ip" {
		words = words[1:]
	}
	var path string
	var rest []string
	switch {
	case len(words) >= 1 && words[0] == "mroute":
		path, rest = api.PathClearMRoute, words[1:]
	case len(words) >= 2 && words[0] == "igmp" && (words[1] == "group" || words[1] == "groups"):
		path, rest = api.PathClearIGMP, words[2:]
	}
	if path == "" || len(rest) > 1 {
		return errors.New("usage: overcast clear ip mroute [GROUP|*] | clear ip igmp group [GROUP|*]  [--socket PATH]")
	}
	arg := "*"
	if len(rest) == 1 {
		arg = rest[0]
	}
	cl, err := df.client()
	if err != nil {
		return err
	}
	var c api.Cleared
	if err := cl.Post(path, arg, &c); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c)
	}
	fmt.Printf("cleared %d %s entries (%s)\n", c.Cleared, c.What, c.Group)
	return nil
}

func runLab(args []string) error {
	if len(args) == 1 && args[0] == "list" {
		labs := lab.List()
		if len(labs) == 0 {
			fmt.Println("no lab is up (overcast lab up FILE)")
			return nil
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "Lab\tFile\tNamespaces")
		for _, x := range labs {
			fmt.Fprintf(w, "%s\t%s\t%s-*\n", x[0], x[1], x[2])
		}
		return w.Flush()
	}
	recreate := false
	if len(args) > 1 && args[0] == "up" && (args[1] == "--recreate" || args[1] == "-recreate") {
		recreate = true
		args = append([]string{"up"}, args[2:]...)
	}
	if len(args) < 2 {
		return errors.New(labUsage)
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	l, err := lab.Load(args[1], bin)
	if err != nil {
		return err
	}
	switch {
	case args[0] == "down" && len(args) == 2:
		return l.Down()
	case args[0] == "status" && len(args) == 2:
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "Node\tNamespace\tState\tDaemon\tShow")
		for _, st := range l.Status() {
			state := "down"
			if st.Up {
				state = "up"
			}
			show := "-"
			if st.Daemon != "" {
				show = fmt.Sprintf("overcast show mroute --lab %s --node %s", l.File, st.Node)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", st.Node, st.Namespace, state, orDashStr(st.Daemon), show)
		}
		return w.Flush()
	case args[0] == "exec" && len(args) >= 4:
		node := args[2]
		found := false
		for _, n := range l.Spec.Nodes {
			found = found || n.Name == node
		}
		if !found {
			return fmt.Errorf("lab %s has no node %q (nodes: %s)", l.Spec.Name, node, nodeNames(l))
		}
		cmd := l.Command(node, args[3:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return exitCode(ee.ExitCode())
			}
			return err
		}
		return nil
	case args[0] == "up" && len(args) == 2:
		if recreate {
			l.Down()
		}
		if err := l.Up(); err != nil {
			return err
		}
		for _, n := range l.Spec.Nodes {
			fmt.Printf("%-10s namespace %s", n.Name, l.NS(n.Name))
			if n.Overcast != "" {
				fmt.Printf("  (overcast show mroute --lab %s --node %s)", l.File, n.Name)
			}
			fmt.Println()
		}
		fmt.Printf("remove it with: overcast lab down %s\n", l.File)
		return nil
	}
	return errors.New(labUsage)
}

func nodeNames(l *lab.Lab) string {
	var ns []string
	for _, n := range l.Spec.Nodes {
		ns = append(ns, n.Name)
	}
	return strings.Join(ns, ", ")
}

func orDashStr(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runSend(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	groups := fs.String("g", "", "group(s): G, G1,G2 or G+N (also --group)")
	fs.StringVar(groups, "group", "", "group(s)")
	port := fs.Int("p", 5001, "UDP port (also --port)")
	fs.IntVar(port, "port", 5001, "UDP port")
	ifn := fs.String("i", "", "outgoing interface (also --interface)")
	fs.StringVar(ifn, "interface", "", "outgoing interface")
	ttl := fs.Int("ttl", 32, "multicast TTL")
	rate := fs.Float64("rate", 100, "packets per second per group")
	bw := fs.String("bw", "", "rate in bit/s of UDP payload per group, e.g. 10M (overrides -rate)")
	format := fs.String("format", "overcast", "payload header: overcast, or iperf (for an iperf -s -u -B G receiver)")
	size := fs.Int("size", 64, "payload bytes")
	count := fs.Int("count", 0, "packets per group (0: until -duration or Ctrl-C)")
	dur := fs.Duration("duration", 0, "how long to send")
	loop := fs.Bool("loopback", false, "loop packets back to local receivers")
	id := fs.Uint("id", uint(os.Getpid()), "sender id carried in each packet")
	seq := fs.Uint64("seq", 0, "first sequence number")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Parse(args)
	if *groups == "" && fs.NArg() == 1 {
		*groups = fs.Arg(0)
	}
	if *groups == "" {
		return errors.New("send: which group? give one with --group (-g), e.g. overcast send --group 239.1.1.1 --rate 100")
	}
	gs, err := mcast.ParseGroups(*groups)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if *bw != "" {
		bps, err := parseRate(*bw)
		if err != nil {
			return err
		}
		*rate = bps / float64(8*max(*size, 24))
	}
	if *ttl < 1 || *ttl > 255 {
		return fmt.Errorf("send: -ttl %d: want 1..255 (32 crosses most networks; 1 stays on the LAN)", *ttl)
	}
	if err := interfaceExists(*ifn); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if *ttl == 1 {
		fmt.Fprintln(os.Stderr, "warning: TTL 1 never crosses a router; use -ttl 32 to reach receivers behind one")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := mcast.Send(ctx, mcast.SendOptions{Groups: gs, Port: *port, Interface: *ifn, TTL: *ttl, Rate: *rate,
		Size: *size, Count: *count, Duration: *dur, Loopback: *loop, SenderID: uint32(*id), StartSeq: *seq, Format: *format})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(res)
	}
	fmt.Printf("sent %d packets (%d bytes) to %d group(s) in %s, %d errors\n", res.Packets, res.Bytes, len(gs), time.Duration(res.Elapsed).Round(time.Millisecond), res.Errors)
	if res.Packets == 0 && res.Errors > 0 {
		return fmt.Errorf("send: no packet could be sent (%d errors): is there a route to the group (ip route add 224.0.0.0/4 dev IFNAME) or give -i", res.Errors)
	}
	return nil
}

// interfaceExists says, for -i, whether the interface is there, naming the
// ones that are when it is not.
func interfaceExists(name string) error {
	if name == "" {
		return nil
	}
	if _, err := net.InterfaceByName(name); err == nil {
		return nil
	}
	return fmt.Errorf("-i %s: no such interface (this host has: %s)", name, strings.Join(hostInterfaces(), ", "))
}

func runRecv(args []string) error {
	fs := flag.NewFlagSet("recv", flag.ExitOnError)
	groups := fs.String("g", "", "group(s): G, G1,G2 or G+N (also --group)")
	fs.StringVar(groups, "group", "", "group(s)")
	source := fs.String("source", "", "source for SSM (S,G) joins (also -s)")
	fs.StringVar(source, "s", "", "source for SSM (S,G) joins")
	port := fs.Int("p", 5001, "UDP port (also --port)")
	fs.IntVar(port, "port", 5001, "UDP port")
	ifn := fs.String("i", "", "interface to join on (also --interface)")
	fs.StringVar(ifn, "interface", "", "interface to join on")
	noJoin := fs.Bool("no-join", false, "do not join; count what arrives (membership made elsewhere)")
	dur := fs.Duration("duration", 10*time.Second, "how long to listen")
	idle := fs.Duration("idle", 0, "stop after this long without packets, once some arrived")
	count := fs.Uint64("count", 0, "stop after this many packets")
	asJSON := fs.Bool("json", false, "print JSON")
	quiet := fs.Bool("q", false, "no per-second lines")
	expectLoss := fs.Int64("expect-loss", -1, "exit 3 unless loss is at most this many packets")
	expectMin := fs.Uint64("expect-packets", 0, "exit 3 unless at least this many packets arrived")
	expectDups := fs.Int64("expect-dups", -1, "exit 3 unless duplicates are at most this many")
	fs.Parse(args)
	if *groups == "" && fs.NArg() == 1 {
		*groups = fs.Arg(0)
	}
	if *groups == "" {
		return errors.New("recv: which group? give one with --group (-g), e.g. overcast recv --group 239.1.1.1 [--source 10.0.1.10]")
	}
	gs, err := mcast.ParseGroups(*groups)
	if err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	if err := interfaceExists(*ifn); err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	var chans []mcast.Channel
	for _, g := range gs {
		ch := mcast.Channel{Group: g}
		if *source != "" {
			if ch.Source, err = netip.ParseAddr(*source); err != nil {
				return err
			}
		}
		chans = append(chans, ch)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := mcast.RecvOptions{Channels: chans, Port: *port, Interface: *ifn, NoJoin: *noJoin, Duration: *dur, Idle: *idle, Count: *count,
		Notice: func(s string) { fmt.Fprintln(os.Stderr, "note:", s) }}
	if !*asJSON && !*quiet {
		o.Interval = func(s mcast.Stats) {
			p, l, d := s.Total()
			var jit float64
			for _, x := range s.Streams {
				jit = max(jit, float64(x.JitterMS))
			}
			fmt.Printf("[%5.1fs] %d packets, %d lost, %d duplicates, %d streams, jitter %.3f ms\n", time.Duration(s.Elapsed).Seconds(), p, l, d, len(s.Streams), jit)
		}
	}
	st, err := mcast.Recv(ctx, o)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("recv: UDP port %d is taken by another socket that does not share it (ss -lunp 'sport = :%d' names it): stop it, or listen on another port with --port", *port, *port)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if err := printJSON(st); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "Source\tGroup\tSender\tPackets\tLost\tDups\tReordered\tJitter ms\tLatency ms\tTTL")
		for _, s := range st.Streams {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t%d\n", s.Source, s.Group, s.Sender, s.Packets, s.Lost, s.Dups, s.Reordered, s.JitterMS, s.LatencyMS, s.TTL)
		}
		w.Flush()
	}
	p, l, d := st.Total()
	var failed []string
	if *expectLoss >= 0 && int64(l) > *expectLoss {
		failed = append(failed, fmt.Sprintf("lost %d > %d", l, *expectLoss))
	}
	if *expectDups >= 0 && int64(d) > *expectDups {
		failed = append(failed, fmt.Sprintf("duplicates %d > %d", d, *expectDups))
	}
	if p < *expectMin {
		failed = append(failed, fmt.Sprintf("packets %d < %d", p, *expectMin))
	}
	if len(failed) > 0 {
		fmt.Fprintln(os.Stderr, "expectation failed:", strings.Join(failed, ", "))
		return exitCode(3)
	}
	return nil
}

// parseRate reads "10M", "1.5G", "64k" or a plain number of bits per second.
func parseRate(s string) (float64, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k") || strings.HasSuffix(s, "K"):
		mult = 1e3
	case strings.HasSuffix(s, "m") || strings.HasSuffix(s, "M"):
		mult = 1e6
	case strings.HasSuffix(s, "g") || strings.HasSuffix(s, "G"):
		mult = 1e9
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: want bits per second like 10M, 512k or 1000000", s)
	}
	return v * mult, nil
}
