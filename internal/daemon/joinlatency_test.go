package daemon

import (
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/dataplane"
)

// The join-to-first-packet histogram: a join whose source starts 40 ms
// later counts 40 ms; a second member's join on an interface the group
// already goes out of counts nothing; a join with no source never counts.
func TestJoinToFirstPacketLatency(t *testing.T) {
	h := newHarness(t, igmpOnly)
	h.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	h.report("eth2", "10.0.2.10", asm("239.5.5.5")) // no source ever
	h.now = h.now.Add(40 * time.Millisecond)
	if out := h.data("eth0", "10.0.0.10", "239.1.1.1"); len(out) != 1 {
		t.Fatalf("forwarded to %v", out)
	}
	h.now = h.now.Add(10 * time.Millisecond)
	h.report("eth1", "10.0.1.11", asm("239.1.1.1")) // already forwarded there
	h.data("eth0", "10.0.0.10", "239.1.1.1")
	v, _ := h.d.View(h.now, api.PathStatus, "")
	j := v.(api.Status).JoinLatency
	if j.Count != 1 || time.Duration(j.Sum) != 40*time.Millisecond {
		t.Fatalf("histogram %+v, want one join of 40 ms", j)
	}
	for _, b := range j.Buckets {
		if want := uint64(0); time.Duration(b.LE) >= 40*time.Millisecond {
			want = 1
			if b.Count != want {
				t.Errorf("bucket le %v: %d, want %d", time.Duration(b.LE), b.Count, want)
			}
		} else if b.Count != want {
			t.Errorf("bucket le %v: %d, want 0", time.Duration(b.LE), b.Count)
		}
	}
	h.run(6 * time.Minute)
	h.d.Tick(h.now) // the real loop ticks every second
	if n := len(h.d.joins.pending); n != 0 {
		t.Errorf("%d joins still pending after 6 minutes without a source", n)
	}
}

// The metrics registry reads the views: an (S,G)'s packets, its outputs,
// IGMP's counters and the join latency, as show prints them.
func TestMetricsFromViews(t *testing.T) {
	h := newHarness(t, igmpOnly)
	h.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	h.now = h.now.Add(40 * time.Millisecond)
	for range 7 {
		h.data("eth0", "10.0.0.10", "239.1.1.1")
	}
	handlers := map[string]api.Handler{}
	for path, f := range h.d.viewFuncs() {
		handlers[path] = func(arg string) (any, error) { return f(h.now, arg) }
	}
	mfs, err := api.MetricsRegistry(handlers).Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[key+",count"] = float64(m.GetHistogram().GetSampleCount())
				got[key+",sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	for k, want := range map[string]float64{
		"overcast_mroute_packets_total,group=239.1.1.1,source=10.0.0.10":                                      7,
		"overcast_mroute_outgoing_interfaces,group=239.1.1.1,source=10.0.0.10":                                1,
		"overcast_mroute_outgoing_interface_info,group=239.1.1.1,interface=eth1,origin=igmp,source=10.0.0.10": 1,
		"overcast_igmp_received_total,interface=eth1,type=v3_report":                                          1,
		"overcast_igmp_groups,interface=eth2":                                                                 1, // the static group
		"overcast_join_to_first_packet_seconds,count":                                                         1,
		"overcast_join_to_first_packet_seconds,sum":                                                           0.04,
		"overcast_flows":           1,
		"overcast_handovers_total": 0,
		"overcast_adopted_routes":  0,
	} {
		if g, ok := got[k]; !ok || g != want {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, want)
		}
	}
}

// clear ip mroute forgets a group's routes (the next packet rebuilds
// them); clear ip igmp group forgets membership and queries again.
func TestClearMRouteAndIGMP(t *testing.T) {
	h := newHarness(t, igmpOnly)
	h.report("eth1", "10.0.1.10", asm("239.1.1.1"))
	h.data("eth0", "10.0.0.10", "239.1.1.1")
	h.data("eth0", "10.0.0.10", "239.2.2.2")
	if _, err := h.d.View(h.now, api.PathClearMRoute, "10.1.1.1"); err == nil {
		t.Error("clear ip mroute of a unicast address accepted")
	}
	v, err := h.d.View(h.now, api.PathClearMRoute, "239.1.1.1")
	if err != nil || v.(api.Cleared).Cleared != 1 {
		t.Fatalf("clear ip mroute 239.1.1.1: %+v %v", v, err)
	}
	if rs, _ := h.fw.ListRoutes(); len(rs) != 1 || rs[0].SG.Group.String() != "239.2.2.2" {
		t.Fatalf("kernel routes after the clear: %+v", rs)
	}
	if out := h.data("eth0", "10.0.0.10", "239.1.1.1"); len(out) != 1 || out[0] != "eth1" {
		t.Fatalf("the next packet after the clear went to %v, want eth1 (rebuilt)", out)
	}
	h.io.Take()
	v, err = h.d.View(h.now, api.PathClearIGMP, "*")
	if err != nil || v.(api.Cleared).Cleared != 1 { // 239.1.1.1 on eth1; eth2's static group stays
		t.Fatalf("clear ip igmp group *: %+v %v", v, err)
	}
	queried := 0
	for _, s := range h.io.Take() {
		if s.Proto == dataplane.IGMP && s.Iface == "eth1" {
			queried++
		}
	}
	if queried == 0 {
		t.Error("no query after clearing eth1's membership")
	}
	if out := h.data("eth0", "10.0.0.10", "239.1.1.1"); len(out) != 0 {
		t.Errorf("after clear ip igmp group the group still goes to %v", out)
	}
	if out := h.data("eth0", "10.0.0.10", "239.9.9.9"); len(out) != 1 {
		t.Errorf("the static group after the clear: %v", out)
	}
}
