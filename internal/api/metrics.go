package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServeMetrics serves Prometheus's /metrics on addr (host:port) until ctx
// ends. Every scrape reads the same views the CLI does (through the
// handlers, on the daemon's loop), so the numbers agree with show.
func ServeMetrics(ctx context.Context, addr string, handlers map[string]Handler) error {
	reg := MetricsRegistry(handlers)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics %s: %w (choose another metrics: address, or free the port)", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// MetricsRegistry is a registry whose collector reads the views through
// handlers at each gather.
func MetricsRegistry(handlers map[string]Handler) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&viewCollector{h: handlers})
	return reg
}

// viewCollector turns the views into metrics at each scrape.
type viewCollector struct{ h map[string]Handler }

// Describe sends nothing: the metrics (and their labels) follow the
// daemon's state (an unchecked collector).
func (*viewCollector) Describe(chan<- *prometheus.Desc) {}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("overcast_"+name, help, labels, nil)
}

var (
	mBuild     = desc("build_info", "Overcast's version (the value is 1).", "version")
	mFlows     = desc("flows", "(S,G) flows the daemon tracks.")
	mRoutes    = desc("kernel_routes", "Routes the daemon holds in the kernel's multicast forwarding cache.")
	mKernErr   = desc("kernel_errors_total", "Route changes the kernel refused.")
	mUpcalls   = desc("upcalls_total", "Forwarding-plane upcalls handled (first packets, wrong-interface packets, registers).")
	mReloads   = desc("reloads_total", "Configuration reloads applied.")
	mHandovers = desc("handovers_total", "Planned restarts handed over to a successor without a stop (overcast restart, SIGUSR2, systemctl restart with the fd store).")
	mAdopted   = desc("adopted_routes", "Kernel routes this run took over from the previous one at its start.")
	mJoin      = desc("join_to_first_packet_seconds", "From a member's join (IGMP) to this router forwarding the group's first packet onto its interface.")
	mPackets   = desc("mroute_packets_total", "Packets an (S,G) route took in on its input interface (the kernel's counter).", "source", "group")
	mBytes     = desc("mroute_bytes_total", "Bytes an (S,G) route took in on its input interface.", "source", "group")
	mRPFFail   = desc("mroute_rpf_failures_total", "Packets of an (S,G) that arrived on an interface other than its input (RPF failed).", "source", "group")
	mRate      = desc("mroute_packets_per_second", "An (S,G)'s packet rate over the daemon's last counter poll.", "source", "group")
	mOIFs      = desc("mroute_outgoing_interfaces", "Interfaces an (S,G) goes out of.", "source", "group")
	mOIF       = desc("mroute_outgoing_interface_info", "One output of an (S,G), and who wants it (the value is 1).", "source", "group", "interface", "origin")
	mIGMPRx    = desc("igmp_received_total", "IGMP messages received, by type.", "interface", "type")
	mIGMPTx    = desc("igmp_queries_sent_total", "IGMP queries sent.", "interface")
	mIGMPDrop  = desc("igmp_dropped_total", "IGMP messages or records dropped, by reason.", "interface", "reason")
	mIGMPGr    = desc("igmp_groups", "Groups with members on an interface.", "interface")
	mIGMPQ     = desc("igmp_querier", "1 when this router is the interface's IGMP querier.", "interface")
	mPIMRx     = desc("pim_received_total", "PIM messages received.")
	mPIMTx     = desc("pim_sent_total", "PIM messages sent.")
	mPIMBad    = desc("pim_malformed_total", "PIM messages that did not parse (dropped).")
	mPIMSendE  = desc("pim_send_errors_total", "PIM messages the host could not send.")
	mPIMRef    = desc("pim_refused_total", "PIM messages admission refused, by reason.", "interface", "reason")
	mPIMNbrs   = desc("pim_neighbors", "PIM neighbours on an interface.", "interface")
	mPIMDR     = desc("pim_dr", "1 when this router is the interface's designated router.", "interface")
	mMirPkts   = desc("mirror_packets_total", "Packets a tap flow copied to its service.", "flow", "service")
	mMirBytes  = desc("mirror_bytes_total", "Bytes a tap flow copied.", "flow", "service")
	mMirSkip   = desc("mirror_skipped_total", "Packets of a tap flow's port no accept rule selected.", "flow", "service")
	mMirRate   = desc("mirror_rate_dropped_total", "Copies the service's rate limit dropped.", "flow", "service")
	mMirSendEr = desc("mirror_send_errors_total", "Copies the kernel could not send.", "flow", "service")
)

// fetch reads one view (false: its component is off, or it failed).
func fetch[T any](c *viewCollector, path string) (T, bool) {
	var zero T
	h := c.h[path]
	if h == nil {
		return zero, false
	}
	v, err := h("")
	if err != nil {
		return zero, false
	}
	t, ok := v.(T)
	return t, ok
}

func (c *viewCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if st, ok := fetch[Status](c, PathStatus); ok {
		gauge(mBuild, 1, st.Version)
		gauge(mFlows, float64(st.Flows))
		gauge(mRoutes, float64(st.Routes))
		counter(mKernErr, st.KernelErrs)
		counter(mUpcalls, st.Upcalls)
		counter(mReloads, st.Reloads)
		counter(mHandovers, st.Handovers)
		gauge(mAdopted, float64(st.AdoptedRoutes))
		buckets := map[float64]uint64{}
		for _, b := range st.JoinLatency.Buckets {
			buckets[time.Duration(b.LE).Seconds()] = b.Count
		}
		ch <- prometheus.MustNewConstHistogram(mJoin, st.JoinLatency.Count, time.Duration(st.JoinLatency.Sum).Seconds(), buckets)
		if st.PIM.Enabled {
			counter(mPIMRx, st.PIM.RxPackets)
			counter(mPIMTx, st.PIM.TxPackets)
			counter(mPIMBad, st.PIM.Malformed)
			counter(mPIMSendE, st.PIM.SendErrors)
		}
	}
	if rs, ok := fetch[[]MRoute](c, PathMRoute); ok {
		for _, r := range rs {
			if r.Source == "*" {
				continue // the kernel counts (S,G)s
			}
			counter(mPackets, r.Packets, r.Source, r.Group)
			counter(mBytes, r.Bytes, r.Source, r.Group)
			counter(mRPFFail, r.WrongIf, r.Source, r.Group)
			gauge(mRate, r.PPS, r.Source, r.Group)
			n := 0
			for _, o := range r.OIFs {
				gauge(mOIF, 1, r.Source, r.Group, o.Name, o.Origin)
				n++
			}
			gauge(mOIFs, float64(n), r.Source, r.Group)
		}
	}
	if igs, ok := fetch[[]IGMPInterface](c, PathIGMPInterfaces); ok {
		for _, i := range igs {
			s := i.Stats
			for typ, v := range map[string]uint64{"query": s.RxQueries, "v1_report": s.RxV1Reports, "v2_report": s.RxV2Reports, "v3_report": s.RxV3Reports, "leave": s.RxLeaves} {
				counter(mIGMPRx, v, i.Name, typ)
			}
			counter(mIGMPTx, s.TxQueries, i.Name)
			for reason, v := range map[string]uint64{"malformed": s.Malformed, "bad_checksum": s.BadChecksum, "truncated": s.Truncated, "ignored": s.Ignored,
				"group_limit": s.GroupLimit, "source_limit": s.SourceLimit, "host_limit": s.HostLimit} {
				counter(mIGMPDrop, v, i.Name, reason)
			}
			gauge(mIGMPGr, float64(i.Groups), i.Name)
			gauge(mIGMPQ, b2f(i.Querier), i.Name)
		}
	}
	if pis, ok := fetch[[]PIMInterface](c, PathPIMInterfaces); ok {
		for _, i := range pis {
			for reason, v := range i.Rejected {
				counter(mPIMRef, v, i.Name, reason)
			}
			gauge(mPIMNbrs, float64(i.Neighbors), i.Name)
			gauge(mPIMDR, b2f(i.IAmDR), i.Name)
		}
	}
	if mv, ok := fetch[MirrorView](c, PathMirror); ok {
		for _, f := range mv.Flows {
			counter(mMirPkts, f.Counters.Mirrored, f.Name, f.Service)
			counter(mMirBytes, f.Counters.Bytes, f.Name, f.Service)
			counter(mMirSkip, f.Counters.Skipped, f.Name, f.Service)
			counter(mMirRate, f.Counters.RateDropped, f.Name, f.Service)
			counter(mMirSendEr, f.Counters.SendErrors, f.Name, f.Service)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
