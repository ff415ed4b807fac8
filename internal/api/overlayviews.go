package api

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func textOverlay(w io.Writer, _ string, o Overlay) {
	fmt.Fprintf(w, "Overlay %s on %s (mtu %d), interest version %d\n", o.Local, o.Interface, o.MTU, o.Version)
	fmt.Fprintf(w, "  Peers: %d, up %d\n", o.Peers, o.PeersUp)
	if o.Store != "" {
		fmt.Fprintf(w, "  Peer store: %s (%s)\n", o.Store, o.StoreState)
	}
	fmt.Fprintf(w, "  Groups wanted here: %s\n", orNone(strings.Join(o.LocalGroups, " ")))
	fmt.Fprintf(w, "  (S,G) replicated into the overlay: %d\n", o.Routes)
	st := o.Stats
	fmt.Fprintf(w, "  Dropped: not a peer %d (control %d), malformed %d, looped %d, no route %d, too big %d\n",
		st.NotPeer, st.ControlNoPeer, st.Malformed, st.Looped, st.NoRoute, st.TooBig)
}

func textOverlayPeers(w0 io.Writer, _ string, rows []OverlayPeer) {
	if len(rows) == 0 {
		fmt.Fprintln(w0, "no overlay peers")
		return
	}
	w := tabwriter.NewWriter(w0, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "Peer\tState\tUptime\tHeard\tRTT\tGroups\tPkts in\tBytes in\tPkts out\tBytes out\tDrops\tAuth fail\tOrigin")
	for _, p := range rows {
		up := "-"
		if p.State == "up" {
			up = p.Uptime.String()
		}
		rtt := "-"
		if p.RTTms > 0 {
			rtt = (time.Duration(p.RTTms*1e6) * time.Nanosecond).Round(time.Microsecond).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Peer, p.State, up, p.LastHeard, rtt, p.Groups,
			p.PacketsIn, p.BytesIn, p.PacketsOut, p.BytesOut, p.Drops, p.AuthFailed, p.Origin)
	}
	w.Flush()
}

func textOverlayRoutes(w io.Writer, _ string, rows []OverlayRoute) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no (S,G) replicated into the overlay")
		return
	}
	for _, r := range rows {
		fmt.Fprintf(w, "(%s, %s), incoming %s, %d peers\n", r.Source, r.Group, r.IIF, len(r.Peers))
		for _, p := range r.Peers {
			why := "all sources"
			switch {
			case p.Mode == "include":
				why = "includes " + strings.Join(p.Sources, " ")
			case len(p.Sources) > 0:
				why = "all sources but " + strings.Join(p.Sources, " ")
			}
			fmt.Fprintf(w, "  %s: %s\n", p.Peer, why)
		}
	}
}
