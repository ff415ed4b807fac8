package ping

import (
	"overcast/internal/api"

	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sort"
	"time"

	"golang.org/x/net/ipv4"

	"overcast/internal/tools/mcast"
)

// RespondOptions configures a responder.
type RespondOptions struct {
	Groups    []netip.Addr
	Interface string // where to join; empty lets the kernel choose
	Name      string
	Port      int // default Port
	Log       func(string)
}

// RespondStats is what a responder answered.
type RespondStats struct {
	Probes  uint64 `json:"probes"`
	SSMPing uint64 `json:"ssmping_queries"`
	Junk    uint64 `json:"junk"`
}

// Respond joins the groups and answers probes (and ssmping queries) until
// ctx ends.
func Respond(ctx context.Context, o RespondOptions) (RespondStats, error) {
	var st RespondStats
	if o.Port == 0 {
		o.Port = Port
	}
	c, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", o.Port))
	if err != nil {
		return st, err
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	if err := p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return st, err
	}
	// ssmpingd sends its multicast answers with TTL 64 so clients can
	// count hops; do the same.
	p.SetMulticastTTL(64)
	p.SetMulticastLoopback(false)
	var ifi *net.Interface
	if o.Interface != "" {
		if ifi, err = net.InterfaceByName(o.Interface); err != nil {
			return st, err
		}
		if err := p.SetMulticastInterface(ifi); err != nil {
			return st, err
		}
	}
	joined := map[netip.Addr]bool{}
	for _, g := range o.Groups {
		if err := p.JoinGroup(ifi, &net.UDPAddr{IP: g.AsSlice()}); err != nil {
			return st, fmt.Errorf("join %s: %w", g, err)
		}
		joined[g] = true
	}
	go func() { <-ctx.Done(); c.Close() }()
	buf := make([]byte, 2048)
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return st, nil
			}
			return st, err
		}
		if cm == nil {
			continue
		}
		dst, _ := netip.AddrFromSlice(cm.Dst.To4())
		b := buf[:n]
		if pr, err := ParseProbe(b); err == nil {
			if !dst.IsMulticast() || !joined[dst] || pr.Group != dst {
				st.Junk++
				continue
			}
			st.Probes++
			reply := MarshalReply(Reply{Probe: pr, TTL: uint8(cm.TTL), Name: o.Name})
			if _, err := p.WriteTo(reply, nil, src); err != nil && o.Log != nil {
				o.Log(fmt.Sprintf("reply to %s: %v", src, err))
			}
			continue
		}
		q, err := ParseSSMPing(b)
		if err != nil || q.Type != SSMPingQuery || dst.IsMulticast() {
			st.Junk++
			continue
		}
		g, err := q.Group()
		if err != nil {
			st.Junk++
			continue
		}
		st.SSMPing++
		q.Type = SSMPingAnswer
		ans := q.Marshal()
		p.WriteTo(ans, nil, src)
		// The multicast answer must come from the address the client
		// queried: the client joined (that address, G).
		ua := src.(*net.UDPAddr)
		out := &ipv4.ControlMessage{Src: dst.AsSlice()}
		if _, err := p.WriteTo(ans, out, &net.UDPAddr{IP: g.AsSlice(), Port: ua.Port}); err != nil && o.Log != nil {
			o.Log(fmt.Sprintf("ssmping answer to %s: %v", g, err))
		}
	}
}

// ProbeOptions configures a prober.
type ProbeOptions struct {
	Group     netip.Addr
	Interface string
	TTL       int
	Count     int
	Interval  time.Duration
	Wait      time.Duration // how long to wait for late replies after the last probe
	Port      int
	ID        uint32
	OnReply   func(from netip.Addr, r Reply, rtt time.Duration)
}

// Responder is what one responder looked like from the prober.
type Responder struct {
	Address  string     `json:"address"`
	Name     string     `json:"name"`
	Replies  int        `json:"replies"`
	Loss     float64    `json:"loss_percent"`
	RTTMin   api.Millis `json:"rtt_min"`
	RTTAvg   api.Millis `json:"rtt_avg"`
	RTTMax   api.Millis `json:"rtt_max"`
	TTL      int        `json:"ttl_at_arrival"`
	Hops     int        `json:"hops"` // routers between prober and responder
	Dups     int        `json:"duplicates"`
	seen     map[uint64]bool
	rttTotal float64
}

// Result is a ping run.
type Result struct {
	Group      string       `json:"group"`
	Sent       int          `json:"sent"`
	Responders []*Responder `json:"responders"`
}

// Run sends Count probes to the group and collects replies.
func Run(ctx context.Context, o ProbeOptions) (Result, error) {
	res := Result{Group: o.Group.String()}
	if o.Port == 0 {
		o.Port = Port
	}
	if o.Count <= 0 {
		o.Count = 5
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Wait <= 0 {
		o.Wait = time.Second
	}
	if o.TTL <= 0 {
		o.TTL = 32
	}
	c, err := mcast.SenderConn(o.TTL, false, o.Interface)
	if err != nil {
		return res, err
	}
	defer c.Close()
	dst := &net.UDPAddr{IP: o.Group.AsSlice(), Port: o.Port}
	byAddr := map[netip.Addr]*Responder{}
	start := time.Now()
	end := start.Add(time.Duration(o.Count-1)*o.Interval + o.Wait)
	next := 0
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		now := time.Now()
		if next < o.Count && !now.Before(start.Add(time.Duration(next)*o.Interval)) {
			pr := Probe{ID: o.ID, Seq: uint64(next), Sent: now.UnixNano(), Group: o.Group}
			if _, err := c.WriteTo(MarshalProbe(pr), dst); err != nil {
				return res, fmt.Errorf("probe %d: %w", next, err)
			}
			next++
			res.Sent = next
		}
		if next >= o.Count && now.After(end) {
			break
		}
		deadline := end
		if next < o.Count {
			deadline = start.Add(time.Duration(next) * o.Interval)
		}
		c.SetReadDeadline(deadline)
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return res, err
		}
		arrival := time.Now()
		r, err := ParseReply(buf[:n])
		if err != nil || r.ID != o.ID || r.Group != o.Group || r.Seq >= uint64(next) {
			continue
		}
		fa, _ := netip.AddrFromSlice(from.(*net.UDPAddr).IP.To4())
		rs := byAddr[fa]
		if rs == nil {
			rs = &Responder{Address: fa.String(), Name: r.Name, seen: map[uint64]bool{}, RTTMin: api.Millis(math.Inf(1))}
			byAddr[fa] = rs
		}
		if rs.seen[r.Seq] {
			rs.Dups++
			continue
		}
		rs.seen[r.Seq] = true
		rtt := arrival.Sub(time.Unix(0, r.Sent))
		ms := float64(rtt) / float64(time.Millisecond)
		rs.Replies++
		rs.rttTotal += ms
		rs.RTTMin, rs.RTTMax = api.Millis(math.Min(float64(rs.RTTMin), ms)), api.Millis(math.Max(float64(rs.RTTMax), ms))
		rs.RTTAvg = api.Millis(rs.rttTotal / float64(rs.Replies))
		rs.TTL = int(r.TTL)
		rs.Hops = o.TTL - int(r.TTL)
		if o.OnReply != nil {
			o.OnReply(fa, r, rtt)
		}
	}
	for _, rs := range byAddr {
		rs.Loss = 100 * float64(res.Sent-rs.Replies) / float64(max(res.Sent, 1))
		res.Responders = append(res.Responders, rs)
	}
	sort.Slice(res.Responders, func(i, j int) bool {
		a, _ := netip.ParseAddr(res.Responders[i].Address)
		b, _ := netip.ParseAddr(res.Responders[j].Address)
		return a.Less(b)
	})
	return res, nil
}
