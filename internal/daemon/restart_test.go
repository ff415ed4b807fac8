package daemon

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
)

func sgOf(s, g string) dataplane.SG {
	return dataplane.SG{Source: netip.MustParseAddr(s), Group: netip.MustParseAddr(g)}
}

// A daemon that finds its predecessor's routes in the forwarder keeps
// forwarding them (input and outputs) for the restart grace, beside what
// IGMP relearns; a route on an interface it does not have goes at once;
// when the grace ends the routes are what IGMP says.
func TestRestartGraceKeepsLeftRoutes(t *testing.T) {
	wanted, unwanted, stray := sgOf("10.0.0.10", "239.1.1.1"), sgOf("10.0.0.10", "239.2.2.2"), sgOf("10.0.7.10", "239.3.3.3")
	h := newHarnessWith(t, igmpOnly+"restart-grace: 30s\n", func(h *harness, env *Env) {
		h.fw.Routes[wanted] = dataplane.Route{SG: wanted, IIF: "eth0", OIFs: []string{"eth1"}}
		h.fw.Routes[unwanted] = dataplane.Route{SG: unwanted, IIF: "eth0", OIFs: []string{"eth1", "eth2"}}
		h.fw.Routes[stray] = dataplane.Route{SG: stray, IIF: "eth7", OIFs: []string{"eth1"}} // eth7 is not configured
	})
	route := func(k dataplane.SG) (dataplane.Route, bool) { r, ok := h.fw.Routes[k]; return r, ok }
	if r, ok := route(wanted); !ok || r.IIF != "eth0" || !slices.Equal(r.OIFs, []string{"eth1"}) {
		t.Fatalf("kept route %+v %v", r, ok)
	}
	if r, ok := route(unwanted); !ok || !slices.Equal(r.OIFs, []string{"eth1", "eth2"}) {
		t.Fatalf("kept route %+v %v", r, ok)
	}
	if _, ok := route(stray); ok {
		t.Fatal("a route on an interface this daemon does not have was kept")
	}
	v, _ := h.d.View(h.now, api.PathMRoute, "")
	origins := map[string]string{}
	for _, r := range v.([]api.MRoute) {
		for _, o := range r.OIFs {
			origins[r.Group+" "+o.Name] = o.Origin
		}
	}
	if origins["239.1.1.1 eth1"] != "restart" || origins["239.2.2.2 eth2"] != "restart" {
		t.Fatalf("show mroute origins %v, want restart for the kept outputs", origins)
	}
	h.report("eth1", "10.0.1.10", asm("239.1.1.1")) // relearned
	h.run(31 * time.Second)
	if r, ok := route(wanted); !ok || !slices.Equal(r.OIFs, []string{"eth1"}) {
		t.Fatalf("after the grace, the relearned route %+v %v", r, ok)
	}
	if r, ok := route(unwanted); ok && len(r.OIFs) != 0 {
		t.Fatalf("after the grace, a route nobody wants still goes out of %v", r.OIFs)
	}
	v, _ = h.d.View(h.now, api.PathMRoute, "")
	for _, r := range v.([]api.MRoute) {
		for _, o := range r.OIFs {
			if o.Origin == "restart" {
				t.Errorf("after the grace (%s, %s) %s is still kept", r.Source, r.Group, o.Name)
			}
		}
	}
}

// restart-grace: 0s drops a predecessor's routes at start.
func TestRestartGraceZeroDrops(t *testing.T) {
	k := sgOf("10.0.0.10", "239.2.2.2")
	h := newHarnessWith(t, igmpOnly+"restart-grace: 0s\n", func(h *harness, env *Env) {
		h.fw.Routes[k] = dataplane.Route{SG: k, IIF: "eth0", OIFs: []string{"eth1"}}
	})
	if _, ok := h.fw.Routes[k]; ok {
		t.Fatal("restart-grace 0 kept a predecessor's route")
	}
}
