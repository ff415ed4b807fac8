package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"overcast/internal/tools/mcast"
	"overcast/internal/tools/ping"
)

// runPing is multicast ping: who receives this group? With -respond it is
// the responder (which also answers ssmping/asmping clients).
func runPing(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ExitOnError)
	respond := fs.Bool("respond", false, "be a responder: join the group(s) and answer probes and ssmping/asmping queries")
	groups := fs.String("g", "", "group (responder: G, G1,G2 or G+N) (also --group)")
	fs.StringVar(groups, "group", "", "group")
	ifn := fs.String("i", "", "interface")
	count := fs.Int("count", 5, "probes to send (also -c)")
	fs.IntVar(count, "c", 5, "probes to send")
	interval := fs.Duration("interval", time.Second, "time between probes")
	wait := fs.Duration("wait", time.Second, "how long to wait for replies after the last probe")
	ttl := fs.Int("ttl", 32, "probe TTL")
	port := fs.Int("p", ping.Port, "UDP port")
	expect := fs.Int("expect", -1, "exit 3 unless exactly this many responders answer")
	name := fs.String("name", "", "responder name in replies (default: host name)")
	dur := fs.Duration("duration", 0, "responder: stop after this long (default: until Ctrl-C)")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Parse(args)
	if fs.NArg() > 0 && *groups == "" {
		*groups = fs.Arg(0)
	}
	gs, err := mcast.ParseGroups(*groups)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *respond {
		if *name == "" {
			*name, _ = os.Hostname()
		}
		if *dur > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *dur)
			defer cancel()
		}
		fmt.Fprintf(os.Stderr, "responding to probes for %d group(s) on port %d as %q (ssmping/asmping clients too)\n", len(gs), *port, *name)
		st, err := ping.Respond(ctx, ping.RespondOptions{Groups: gs, Interface: *ifn, Name: *name, Port: *port,
			Log: func(s string) { fmt.Fprintln(os.Stderr, s) }})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		fmt.Printf("answered %d probes and %d ssmping queries; %d other packets ignored\n", st.Probes, st.SSMPing, st.Junk)
		return nil
	}
	if len(gs) != 1 {
		return fmt.Errorf("probe one group at a time")
	}
	if *ttl == 1 {
		fmt.Fprintln(os.Stderr, "warning: TTL 1 only reaches responders on this LAN")
	}
	o := ping.ProbeOptions{Group: gs[0], Interface: *ifn, TTL: *ttl, Count: *count, Interval: *interval, Wait: *wait,
		Port: *port, ID: uint32(os.Getpid())}
	if !*asJSON {
		fmt.Printf("PING %s port %d, TTL %d, %d probes\n", gs[0], *port, *ttl, *count)
		o.OnReply = func(from netip.Addr, r ping.Reply, rtt time.Duration) {
			fmt.Printf("reply from %s (%s): seq=%d ttl=%d hops=%d time=%.3f ms\n", from, r.Name, r.Seq, r.TTL, *ttl-int(r.TTL),
				float64(rtt)/float64(time.Millisecond))
		}
	}
	res, err := ping.Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		if res.Responders == nil {
			res.Responders = []*ping.Responder{}
		}
		if err := printJSON(res); err != nil {
			return err
		}
	} else {
		fmt.Printf("\n--- %s: %d probes sent, %d responder(s) ---\n", res.Group, res.Sent, len(res.Responders))
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "Responder\tName\tReplies\tLoss\tRTT min/avg/max ms\tTTL\tHops")
		for _, r := range res.Responders {
			fmt.Fprintf(w, "%s\t%s\t%d/%d\t%.0f%%\t%.3f/%.3f/%.3f\t%d\t%d\n", r.Address, r.Name, r.Replies, res.Sent, r.Loss, r.RTTMin, r.RTTAvg, r.RTTMax, r.TTL, r.Hops)
		}
		w.Flush()
	}
	switch {
	case *expect >= 0 && len(res.Responders) != *expect:
		fmt.Fprintf(os.Stderr, "expected %d responders, got %d\n", *expect, len(res.Responders))
		return exitCode(3)
	case len(res.Responders) == 0:
		if !*asJSON {
			fmt.Println("no responder answered: nobody on the path receives this group (or no responder runs)")
		}
		return exitCode(1)
	}
	return nil
}
