package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"overcast/internal/tools/addr"
)

const addrUsage = `overcast addr GROUP...            MAC, IANA block, scope, well-known name, groups sharing the MAC
overcast addr check FILE|-        MAC collisions and risky groups in an address plan (G, G+N, S,G per item)
overcast addr glop AS|GROUP       GLOP block of a 16-bit AS, or the AS that owns a GLOP group (RFC 3180)
overcast addr ubm PREFIX          unicast-prefix-based multicast block of a /24 or shorter (RFC 6034)
      flags: --json
`

func runAddr(args []string) error {
	var words []string
	asJSON := false
	for _, a := range args {
		switch a {
		case "-json", "--json":
			asJSON = true
		case "-h", "--help", "-help":
			fmt.Print(addrUsage)
			return nil
		default:
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		fmt.Fprint(os.Stderr, addrUsage)
		return exitCode(2)
	}
	out := printJSON
	switch words[0] {
	case "check":
		if len(words) != 2 {
			return fmt.Errorf("usage: overcast addr check FILE (or - for stdin)")
		}
		var b []byte
		var err error
		name := words[1]
		if name == "-" {
			b, err = io.ReadAll(os.Stdin)
			name = "stdin"
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return err
		}
		plan, err := addr.ParsePlan(name, string(b))
		if err != nil {
			return err
		}
		fs := addr.Check(plan)
		if asJSON {
			if fs == nil {
				fs = []addr.Finding{}
			}
			out(fs)
		} else {
			for _, f := range fs {
				lines := make([]string, len(f.Lines))
				for i, l := range f.Lines {
					lines[i] = strconv.Itoa(l)
				}
				fmt.Printf("%-4s %s (line %s): %s\n     fix: %s\n", f.Level, strings.Join(f.Groups, ", "), strings.Join(lines, ", "), f.Problem, f.Fix)
			}
			fmt.Printf("%d groups checked, %d findings\n", len(plan), len(fs))
		}
		if len(fs) > 0 {
			return exitCode(1)
		}
		return nil
	case "glop":
		if len(words) != 2 {
			return fmt.Errorf("usage: overcast addr glop AS|GROUP")
		}
		if g, err := netip.ParseAddr(words[1]); err == nil {
			as, err := addr.GlopAS(g)
			if err != nil {
				return err
			}
			p, _ := addr.Glop(as)
			if asJSON {
				return out(glopAnswer{Group: g, AS: as, Block: p, First: p.Addr(), Last: lastOf(p)})
			}
			fmt.Printf("%s is in %s, the GLOP block of AS %d\n", g, p, as)
			return nil
		}
		as, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(words[1]), "AS"), 10, 32)
		if err != nil {
			return fmt.Errorf("%q is neither an AS number nor a group", words[1])
		}
		p, err := addr.Glop(uint32(as))
		if err != nil {
			return err
		}
		if asJSON {
			return out(glopAnswer{AS: uint32(as), Block: p, First: p.Addr(), Last: lastOf(p)})
		}
		fmt.Printf("AS %d: GLOP block %s (%s - %s, 256 groups)\n", as, p, p.Addr(), lastOf(p))
		return nil
	case "ubm":
		if len(words) != 2 {
			return fmt.Errorf("usage: overcast addr ubm PREFIX")
		}
		p, err := netip.ParsePrefix(words[1])
		if err != nil {
			return err
		}
		m, err := addr.UBM(p)
		if err != nil {
			return err
		}
		n := 1 << (32 - m.Bits())
		if asJSON {
			return out(ubmAnswer{Prefix: p.Masked(), Block: m, Groups: n})
		}
		fmt.Printf("%s: unicast-prefix-based block %s (%s - %s, %d group(s))\n", p.Masked(), m, m.Addr(), lastOf(m), n)
		return nil
	}
	var infos []addr.Info
	for _, w := range words {
		g, err := netip.ParseAddr(w)
		if err != nil {
			return fmt.Errorf("%q: not an address (subcommands: check, glop, ubm)", w)
		}
		in, err := addr.Classify(g)
		if err != nil {
			return err
		}
		infos = append(infos, in)
	}
	if asJSON {
		return out(infos)
	}
	for i, in := range infos {
		if i > 0 {
			fmt.Println()
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(w, "Group\t%s\n", in.Group)
		fmt.Fprintf(w, "MAC\t%s\n", in.MAC)
		fmt.Fprintf(w, "Block\t%s\n", in.Block)
		fmt.Fprintf(w, "Scope\t%s\n", in.Scope)
		if in.Name != "" {
			fmt.Fprintf(w, "Assigned\t%s\n", in.Name)
		}
		if in.GlopAS != 0 {
			fmt.Fprintf(w, "GLOP AS\t%d\n", in.GlopAS)
		}
		if in.UBMPrefix != "" {
			fmt.Fprintf(w, "Owner prefix\t%s (RFC 6034)\n", in.UBMPrefix)
		}
		for _, n := range in.Notes {
			fmt.Fprintf(w, "Note\t%s\n", n)
		}
		w.Flush()
		fmt.Printf("Shares %s with:\n", in.MAC)
		for j := 0; j < len(in.SharingMAC); j += 8 {
			fmt.Println("  " + strings.Join(in.SharingMAC[j:min(j+8, len(in.SharingMAC))], " "))
		}
	}
	return nil
}

func lastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// glopAnswer is addr glop --json: the GLOP block of an AS (RFC 3180),
// and the group asked about (null when an AS was asked).
type glopAnswer struct {
	Group netip.Addr   `json:"group"`
	AS    uint32       `json:"as"`
	Block netip.Prefix `json:"block"`
	First netip.Addr   `json:"first"`
	Last  netip.Addr   `json:"last"`
}

// ubmAnswer is addr ubm --json: a unicast prefix's multicast block (RFC 6034).
type ubmAnswer struct {
	Prefix netip.Prefix `json:"prefix"`
	Block  netip.Prefix `json:"block"`
	Groups int          `json:"group_count"`
}
