package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/mirror"
	"overcast/internal/tools/collect"
)

const mirrorUsage = `usage:
  overcast mirror service add NAME --to vxlan://COLLECTOR[:PORT] --vni N [--truncate N] [--rate 10000pps|100mbps] [--vlan keep|strip] [--mac MAC]
  overcast mirror service add NAME --to port:IFNAME [--mac MONITOR-MAC] [--truncate N] [--rate R] [--vlan keep|strip]
  overcast mirror service del NAME
  overcast mirror flow add --service NAME --port IFNAME --direction in|out|both [--name NAME] [--rule RULE]...
  overcast mirror flow del NAME
  overcast mirror collect [--listen :4789] [--pcap DIR] [--inject IFNAME] [--vni N,...] [--duration D] [--count N] [--json]
    (-s SOCKET for all but collect; RULE: "[N] accept|reject [proto P] [src PFX] [dst PFX] [sport N[-M]] [dport N[-M]] [group G] [sg S,G]")`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, "; ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// mirrorArgs splits words from flags, every flag taking a value.
func mirrorArgs(args []string, boolFlags ...string) (words, flags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			isBool := strings.Contains(a, "=")
			for _, b := range boolFlags {
				isBool = isBool || name == b
			}
			if !isBool && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		words = append(words, a)
	}
	return
}

func runMirror(args []string) error {
	if len(args) == 0 {
		return errors.New(mirrorUsage)
	}
	if args[0] == "collect" {
		return runCollect(args[1:])
	}
	words, flags := mirrorArgs(args)
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	df := addDaemonFlags(fs)
	to := fs.String("to", "", "vxlan://COLLECTOR[:PORT] or port:IFNAME")
	vni := fs.Uint("vni", 0, "the session's VNI")
	trunc := fs.Uint("truncate", 0, "octets per copy")
	rate := fs.String("rate", "", "rate limit: 10000pps, 100mbps")
	vlan := fs.String("vlan", "keep", "keep or strip the VLAN tag")
	mac := fs.String("mac", "", "rewrite the copies' destination MAC")
	service := fs.String("service", "", "the flow's tap service")
	port := fs.String("port", "", "the interface to tap")
	dir := fs.String("direction", "both", "in, out or both")
	name := fs.String("name", "", "the flow's name (default SERVICE:PORT:DIRECTION)")
	var rules listFlag
	fs.Var(&rules, "rule", "a classification rule (repeat; in order)")
	if err := fs.Parse(flags); err != nil {
		return errors.New(mirrorUsage)
	}
	if len(words) < 2 {
		return errors.New(mirrorUsage)
	}
	c, err := df.client()
	if err != nil {
		return err
	}
	var out api.MirrorChange
	switch words[0] + " " + words[1] {
	case "service add":
		if len(words) != 3 {
			return errors.New("mirror service add: give the service's NAME\n" + mirrorUsage)
		}
		s, err := config.MirrorService{Name: words[2], To: *to, VNI: uint32(*vni), Truncate: uint32(*trunc), Rate: *rate, VLAN: *vlan, MAC: *mac}.Spec()
		if err != nil {
			return err
		}
		if err := c.PostJSON(api.PathMirrorServiceAdd, s, &out); err != nil {
			return err
		}
	case "service del", "flow del":
		if len(words) != 3 {
			return fmt.Errorf("mirror %s: give the NAME (overcast show mirror lists them)", strings.Join(words[:2], " "))
		}
		path := api.PathMirrorServiceDel
		if words[0] == "flow" {
			path = api.PathMirrorFlowDel
		}
		if err := c.Post(path, words[2], &out); err != nil {
			return err
		}
	case "flow add":
		if len(words) != 2 {
			return errors.New("mirror flow add takes flags only\n" + mirrorUsage)
		}
		f, err := config.MirrorFlow{Name: *name, Service: *service, Port: *port, Direction: *dir, Rules: rules}.Spec()
		if err != nil {
			return err
		}
		if err := c.PostJSON(api.PathMirrorFlowAdd, f, &out); err != nil {
			return err
		}
	default:
		return errors.New(mirrorUsage)
	}
	fmt.Printf("tap %s %s %s (%d services, %d flows)\n", out.Kind, out.Name, out.Action, out.Services, out.Flows)
	return nil
}

func runCollect(args []string) error {
	_, flags := mirrorArgs(args, "json")
	fs := flag.NewFlagSet("mirror collect", flag.ContinueOnError)
	var cfg collect.Config
	fs.StringVar(&cfg.Listen, "listen", ":4789", "UDP address the VXLAN copies come to")
	fs.StringVar(&cfg.PCAPDir, "pcap", "", "write one pcapng file per session (VNI) here")
	fs.StringVar(&cfg.Inject, "inject", "", "send the inner frames out of this interface (an IDS's)")
	vnis := fs.String("vni", "", "only these VNIs (comma-separated)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: at SIGINT/SIGTERM)")
	fs.Uint64Var(&cfg.Count, "count", 0, "stop after this many copies")
	asJSON := fs.Bool("json", false, "print the account as JSON")
	if err := fs.Parse(flags); err != nil {
		return errors.New(mirrorUsage)
	}
	for _, v := range strings.Split(*vnis, ",") {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n > mirror.MaxVNI {
			return fmt.Errorf("--vni %q: want numbers 1..%d, comma-separated", v, mirror.MaxVNI)
		}
		cfg.VNIs = append(cfg.VNIs, uint32(n))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	st, err := collect.Run(ctx, cfg, func(addr string) {
		fmt.Fprintf(os.Stderr, "collecting VXLAN copies on %s\n", addr)
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(st)
	}
	fmt.Printf("%d sessions, %d not VXLAN, %d of other VNIs\n", len(st.Sessions), st.Malformed, st.Filtered)
	for _, s := range st.Sessions {
		fmt.Printf("  VNI %d: %d packets, %d bytes, injected %d (errors %d) %s\n", s.VNI, s.Packets, s.Bytes, s.Injected, s.InjectErr, s.File)
	}
	return nil
}
