package doctor

import (
	"overcast/internal/api"

	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"overcast/internal/packet/igmp"
)

// Listen joins the group on the interface (when one is given) and, for the
// listening time, records the IGMP queries heard and who sends to the group
// with what TTL. Raw sockets see packets as they arrive, whatever their UDP
// port; the kernel's rp_filter drops happen before them and are counted
// from /proc/net/netstat instead.
func Listen(ctx context.Context, o Options) (*Observation, error) {
	obs := &Observation{Duration: api.Duration(o.Listen)}
	igmpConn, err := net.ListenPacket("ip4:2", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	defer igmpConn.Close()
	udpConn, err := net.ListenPacket("ip4:17", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	defer udpConn.Close()
	rawIGMP, err := ipv4.NewRawConn(igmpConn)
	if err != nil {
		return nil, err
	}
	rawUDP, err := ipv4.NewRawConn(udpConn)
	if err != nil {
		return nil, err
	}
	if o.Group.IsValid() {
		var ifi *net.Interface
		if o.Interface != "" {
			ifi, _ = net.InterfaceByName(o.Interface)
		}
		jc, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return nil, err
		}
		defer jc.Close()
		p := ipv4.NewPacketConn(jc)
		g := &net.UDPAddr{IP: o.Group.AsSlice()}
		if o.Source.IsValid() {
			err = p.JoinSourceSpecificGroup(ifi, g, &net.UDPAddr{IP: o.Source.AsSlice()})
		} else {
			err = p.JoinGroup(ifi, g)
		}
		if err != nil {
			obs.JoinError = err.Error()
		}
	}
	before := rpFilterDrops()
	deadline := time.Now().Add(time.Duration(o.Listen))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	igmpConn.SetReadDeadline(deadline)
	udpConn.SetReadDeadline(deadline)

	var mu sync.Mutex
	queries := map[[2]string]*Query{}
	senders := map[netip.Addr]*Sender{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			h, payload, _, err := rawIGMP.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := igmp.Parse(payload)
			q, ok := m.(*igmp.Query)
			if err != nil || !ok {
				continue
			}
			from, _ := netip.AddrFromSlice(h.Src.To4())
			grp := ""
			if !q.IsGeneral() {
				grp = q.Group.String()
			}
			mu.Lock()
			k := [2]string{from.String(), grp}
			if queries[k] == nil {
				queries[k] = &Query{From: from, Version: q.Version, Group: grp}
			}
			queries[k].Count++
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			h, _, _, err := rawUDP.ReadFrom(buf)
			if err != nil {
				return
			}
			dst, _ := netip.AddrFromSlice(h.Dst.To4())
			if !o.Group.IsValid() || dst != o.Group {
				continue
			}
			src, _ := netip.AddrFromSlice(h.Src.To4())
			mu.Lock()
			s := senders[src]
			if s == nil {
				s = &Sender{Source: src, MinTTL: h.TTL}
				senders[src] = s
			}
			s.Packets++
			s.MinTTL = min(s.MinTTL, h.TTL)
			mu.Unlock()
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		igmpConn.SetReadDeadline(time.Now())
		udpConn.SetReadDeadline(time.Now())
	})
	defer stop()
	wg.Wait()
	obs.RPFilterDrops = rpFilterDrops() - before
	for _, q := range queries {
		obs.Queries = append(obs.Queries, *q)
	}
	for _, s := range senders {
		obs.Senders = append(obs.Senders, *s)
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return obs, ctx.Err()
	}
	return obs, nil
}

// rpFilterDrops reads TcpExt IPReversePathFilter from /proc/net/netstat:
// packets the kernel dropped by reverse-path filtering in this namespace.
func rpFilterDrops() int {
	lines := strings.Split(readFile("/proc/net/netstat"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
			continue
		}
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, n := range names {
			if n == "IPReversePathFilter" && j < len(vals) {
				v, _ := strconv.Atoi(vals[j])
				return v
			}
		}
	}
	return 0
}
