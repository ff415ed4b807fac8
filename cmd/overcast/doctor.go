package main

import (
	"overcast/internal/api"

	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"overcast/internal/tools/doctor"
)

// runDoctor checks this host (its network namespace) for the usual reasons
// multicast does not arrive, and names the fix for each. Exit status: 0 all
// OK, 1 warnings, 2 failures.
func runDoctor(args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ExitOnError)
	ifn := fs.String("i", "", "the interface multicast should use (default: the one the kernel routes the group to)")
	group := fs.String("g", "", "a group to check; doctor also joins it and listens (also --group)")
	fs.StringVar(group, "group", "", "a group to check")
	source := fs.String("source", "", "the group's source (SSM, rp_filter checks) (also -s)")
	fs.StringVar(source, "s", "", "the group's source")
	listen := fs.Duration("listen", 3*time.Second, "how long to listen on the wire with -g")
	asJSON := fs.Bool("json", false, "print JSON")
	peers := fs.String("peer", "", "overlay peers (ADDR,ADDR): check the path MTU toward them")
	port := fs.Int("port", 0, "the stream's UDP port: firewall rules that drop it (also -p)")
	fs.IntVar(port, "p", 0, "the stream's UDP port")
	size := fs.Int("size", 0, "the stream's UDP payload in bytes: does it fit the path's MTU")
	fs.Parse(args)
	if *port < 0 || *port > 65535 || *size < 0 || *size > 65507 {
		return fmt.Errorf("doctor: --port %d, --size %d: want a UDP port (1..65535) and a payload (1..65507)", *port, *size)
	}
	o := doctor.Options{Interface: *ifn, Port: *port, Size: *size}
	for _, p := range strings.FieldsFunc(*peers, func(r rune) bool { return r == ',' }) {
		a, err := netip.ParseAddr(p)
		if err != nil || !a.Is4() {
			return fmt.Errorf("-peer %q: want IPv4 addresses", p)
		}
		o.Peers = append(o.Peers, a)
	}
	var err error
	if *group != "" {
		if o.Group, err = netip.ParseAddr(*group); err != nil || !o.Group.Is4() {
			return fmt.Errorf("-g %q: want an IPv4 group", *group)
		}
		o.Listen = api.Duration(*listen)
	}
	if *source != "" {
		if o.Source, err = netip.ParseAddr(*source); err != nil || !o.Source.Is4() {
			return fmt.Errorf("-s %q: want an IPv4 address", *source)
		}
	}
	facts := doctor.Gather(o)
	if o.Group.IsValid() && o.Listen > 0 {
		if !*asJSON {
			fmt.Fprintf(os.Stderr, "listening %s for queries and traffic to %s...\n", o.Listen, o.Group)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		obs, err := doctor.Listen(ctx, o)
		stop()
		if err != nil && obs == nil {
			return fmt.Errorf("listen: %w", err)
		}
		facts.Listen = obs
	}
	findings := doctor.Diagnose(facts)
	if *asJSON {
		if err := printJSON(doctorReport{findings, facts}); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			fmt.Printf("%-4s  %-26s %s\n", f.Level, f.Check, f.Detail)
			if f.Fix != "" && f.Level != doctor.OK {
				fmt.Printf("      %-26s fix: %s\n", "", f.Fix)
			}
		}
	}
	switch doctor.Worst(findings) {
	case doctor.Fail:
		return exitCode(2)
	case doctor.Warn:
		return exitCode(1)
	}
	return nil
}
