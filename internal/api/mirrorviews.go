package api

import (
	"fmt"
	"io"
	"text/tabwriter"

	"overcast/internal/mirror"
)

// MirrorView is show mirror: the tap services and flows with counters.
type MirrorView struct {
	Services []MirrorServiceRow `json:"services"`
	Flows    []MirrorFlowRow    `json:"flows"`
}

// MirrorCounters are a flow's (or a service's flows') counts: mirrored
// packets and bytes, skipped by rule, dropped by the rate limit,
// truncated, and copies the kernel could not send.
type MirrorCounters = mirror.Counters

// MirrorServiceRow is one tap service.
type MirrorServiceRow struct {
	Name     string         `json:"name"`
	Target   string         `json:"target"` // vxlan://ADDR:PORT or port:IFNAME
	VNI      uint32         `json:"vni"`    // 0 for port delivery
	Truncate uint32         `json:"truncate"`
	Rate     string         `json:"rate"` // "none", "10000pps", "100000000bps"
	VLAN     string         `json:"vlan"` // keep or strip
	MAC      string         `json:"mac"`  // "" keeps the destination MAC
	Origin   string         `json:"origin"`
	Flows    int            `json:"flow_count"`
	Counters MirrorCounters `json:"counters"`
}

// MirrorFlowRow is one tap flow.
type MirrorFlowRow struct {
	Name      string         `json:"name"`
	Service   string         `json:"service"`
	Port      string         `json:"port"`
	Direction string         `json:"direction"`
	Rules     []string       `json:"rules"`
	Origin    string         `json:"origin"` // config or api
	State     string         `json:"state"`  // attached, or why not
	Note      string         `json:"note"`   // "" or what to know (copies fragmented on the underlay)
	Counters  MirrorCounters `json:"counters"`
}

// MirrorChange is the answer to mirror service|flow add|del.
type MirrorChange struct {
	Kind     string `json:"kind"` // service or flow
	Name     string `json:"name"`
	Action   string `json:"action"`
	Services int    `json:"services"`
	Flows    int    `json:"flow_count"`
}

func textMirror(w0 io.Writer, _ string, m MirrorView) {
	if len(m.Services) == 0 {
		fmt.Fprintln(w0, "no tap services (overcast mirror service add NAME --to vxlan://COLLECTOR --vni N)")
		return
	}
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "Tap service\tTarget\tVNI\tTruncate\tRate\tVLAN\tMAC\tFlows\tMirrored\tBytes\tSkipped\tRate-dropped\tTruncated\tOrigin")
	for _, s := range m.Services {
		c := s.Counters
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.Target, dashZero(uint64(s.VNI)), dashZero(uint64(s.Truncate)),
			s.Rate, s.VLAN, orDash(s.MAC), s.Flows, c.Mirrored, c.Bytes, c.Skipped, c.RateDropped, c.Truncated, s.Origin)
	}
	w.Flush()
	fmt.Fprintln(w0)
	if len(m.Flows) == 0 {
		fmt.Fprintln(w0, "no tap flows (overcast mirror flow add --service NAME --port IFNAME --direction both)")
		return
	}
	w = tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "Tap flow\tService\tPort\tDirection\tRules\tState\tMirrored\tBytes\tSkipped\tRate-dropped\tTruncated\tSend errors\tOrigin")
	for _, f := range m.Flows {
		c := f.Counters
		rules := fmt.Sprint(len(f.Rules))
		if len(f.Rules) == 0 {
			rules = "all"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", f.Name, f.Service, f.Port, f.Direction, rules, f.State,
			c.Mirrored, c.Bytes, c.Skipped, c.RateDropped, c.Truncated, c.SendErrors, f.Origin)
	}
	w.Flush()
	for _, f := range m.Flows {
		if f.Note != "" {
			fmt.Fprintf(w0, "  %s: %s\n", f.Name, f.Note)
		}
	}
}

func dashZero(v uint64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
