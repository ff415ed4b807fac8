// Package mcast is the test sender and receiver behind `overcast send` and
// `overcast recv`: sequence-numbered, timestamped UDP multicast and the
// per-(source, group) statistics a network engineer needs (loss, duplicates,
// reordering, jitter).
package mcast

import (
	"overcast/internal/api"

	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/ipv4"
)

// Payload header: magic, sender id, sequence, send time (unix ns).
const (
	magic      = "OVC1"
	headerSize = 4 + 4 + 8 + 8
)

// SendOptions configures a sender.
type SendOptions struct {
	Groups    []netip.Addr
	Port      int
	Interface string // outgoing interface; empty lets the kernel's route decide
	TTL       int
	Rate      float64 // packets per second per group
	Size      int     // payload bytes, at least headerSize
	Count     int     // packets per group; 0 = until Duration or ctx
	Duration  time.Duration
	Loopback  bool
	SenderID  uint32
	StartSeq  uint64
	Format    string // "" or "overcast": Overcast's header; "iperf": iperf2's UDP header, so `iperf -s -u -B G` can measure it
}

// SendResult is what a sender did.
type SendResult struct {
	Packets uint64       `json:"packets"`
	Bytes   uint64       `json:"bytes"`
	Elapsed api.Duration `json:"elapsed"`
	Errors  uint64       `json:"errors"`
}

// Send transmits the stream until Count, Duration or ctx ends it.
func Send(ctx context.Context, o SendOptions) (SendResult, error) {
	var res SendResult
	if o.Size < headerSize {
		o.Size = headerSize
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	c, err := SenderConn(o.TTL, o.Loopback, o.Interface)
	if err != nil {
		return res, err
	}
	defer c.Close()
	iperf := o.Format == "iperf"
	if !iperf && o.Format != "" && o.Format != "overcast" {
		return res, fmt.Errorf("payload format %q: want overcast or iperf", o.Format)
	}
	buf := make([]byte, o.Size)
	copy(buf, magic)
	binary.BigEndian.PutUint32(buf[4:], o.SenderID)
	stamp := func(seq uint64) {
		now := time.Now()
		if iperf {
			// iperf2's UDP datagram header: int32 id, u32 tv_sec, u32 tv_usec.
			binary.BigEndian.PutUint32(buf[0:], uint32(int32(seq)))
			binary.BigEndian.PutUint32(buf[4:], uint32(now.Unix()))
			binary.BigEndian.PutUint32(buf[8:], uint32(now.Nanosecond()/1000))
			return
		}
		binary.BigEndian.PutUint64(buf[8:], seq)
		binary.BigEndian.PutUint64(buf[16:], uint64(now.UnixNano()))
	}
	interval := time.Duration(float64(time.Second) / o.Rate)
	start := time.Now()
	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	dsts := make([]*net.UDPAddr, len(o.Groups))
	for i, g := range o.Groups {
		dsts[i] = net.UDPAddrFromAddrPort(netip.AddrPortFrom(g, uint16(o.Port)))
	}
	for seq := o.StartSeq; ; seq++ {
		if o.Count > 0 && seq-o.StartSeq >= uint64(o.Count) {
			break
		}
		now := time.Now()
		if (!deadline.IsZero() && now.After(deadline)) || ctx.Err() != nil {
			break
		}
		for i, d := range dsts {
			stamp(seq)
			if _, err := c.WriteTo(buf, d); err != nil {
				res.Errors++
			} else {
				res.Packets++
				res.Bytes += uint64(len(buf))
			}
			// Pace every packet against the start time, so that many groups
			// are spread over the interval instead of sent as one burst,
			// and rates hold on average.
			k := int64(seq-o.StartSeq)*int64(len(dsts)) + int64(i) + 1
			next := start.Add(time.Duration(k) * interval / time.Duration(len(dsts)))
			if d := time.Until(next); d > 50*time.Microsecond {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
	}
	if iperf {
		// iperf2 ends a stream with datagrams carrying a negative id; its
		// server prints the final report when one arrives.
		fin := -int32(o.StartSeq + res.Packets/uint64(max(len(dsts), 1)))
		for range 3 {
			for _, d := range dsts {
				binary.BigEndian.PutUint32(buf[0:], uint32(fin))
				c.WriteTo(buf, d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	res.Elapsed = api.Duration(time.Since(start))
	return res, nil
}

// SenderConn opens an unbound UDP socket for sending multicast with the
// given TTL (0 keeps the kernel's default of 1), loopback and outgoing
// interface ("" lets the kernel's route decide).
func SenderConn(ttl int, loopback bool, ifname string) (net.PacketConn, error) {
	c, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	p := ipv4.NewPacketConn(c)
	if ttl > 0 {
		err = p.SetMulticastTTL(ttl)
	}
	if err == nil {
		err = p.SetMulticastLoopback(loopback)
	}
	if err == nil && ifname != "" {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(ifname); err == nil {
			err = p.SetMulticastInterface(ifi)
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Channel is a group to receive, with a source for SSM (S,G) joins.
type Channel struct {
	Group  netip.Addr
	Source netip.Addr // invalid for ASM
}

// RecvOptions configures a receiver.
type RecvOptions struct {
	Channels  []Channel
	Port      int
	Interface string
	NoJoin    bool          // listen only; membership comes from elsewhere (autojoin)
	Duration  time.Duration // total listening time
	Idle      time.Duration // stop after this long without packets, once some arrived
	Count     uint64        // stop after this many packets in all
	Interval  func(Stats)   // called every second with running totals
	Notice    func(string)  // told about things worth a line on stderr

	// Kernel limits; zero reads them from /proc/sys/net/ipv4.
	MaxGroupsPerSocket int
	MaxSourcesPerGroup int
}

// Stream is what one sender to one group looked like at the receiver.
type Stream struct {
	Source    string     `json:"source"`
	Group     string     `json:"group"`
	Sender    uint32     `json:"sender_id"`
	Packets   uint64     `json:"packets"`
	Bytes     uint64     `json:"bytes"`
	Expected  uint64     `json:"expected"`
	Lost      uint64     `json:"lost"`
	Dups      uint64     `json:"duplicates"`
	Reordered uint64     `json:"reordered"`
	Gaps      uint64     `json:"gaps"`
	JitterMS  api.Millis `json:"jitter"`      // RFC 3550 interarrival jitter
	LatencyMS api.Millis `json:"latency_avg"` // one-way, average (shared clock)
	TTL       int        `json:"ttl"`
	Foreign   uint64     `json:"foreign"`   // packets without Overcast's header (iperf, others)
	EndMarks  uint64     `json:"end_marks"` // iperf end-of-stream datagrams (not counted as packets)
	FirstSeq  uint64     `json:"first_seq"`
	// MissingSample lists the first lost sequence numbers (up to 20).
	MissingSample []uint64 `json:"missing_sample,omitempty"`
	// LostInFirst100 counts sequence numbers 0-99 never received: the
	// packets a new source loses while the network sets up its tree.
	LostInFirst100 int        `json:"lost_in_first_100"`
	FirstLatencyMS api.Millis `json:"first_latency"` // one-way latency of the first packet (shared clock)
	LastSeq        uint64     `json:"last_seq"`

	seen       map[uint64]bool
	maxSeq     uint64
	transit    float64
	latencySum float64
	started    bool
}

// Stats is the receiver's result: one stream per (source, group, sender).
type Stats struct {
	Streams []*Stream    `json:"streams"`
	Elapsed api.Duration `json:"elapsed"`
	Joined  int          `json:"joined_channels"` // channels joined
	Sockets int          `json:"sockets"`         // sockets the memberships were spread over
	// FirstAfterJoin is the time from the last join to the first packet:
	// the network's join latency when the source is already sending.
	FirstAfterJoin api.Duration `json:"first_after_join"`
}

// Total sums packets over streams.
func (s Stats) Total() (pkts, lost, dups uint64) {
	for _, st := range s.Streams {
		pkts += st.Packets
		lost += st.Lost
		dups += st.Dups
	}
	return
}

type streamKey struct {
	src, grp netip.Addr
	id       uint32
}

// Recv joins the channels and collects statistics until Duration, Count,
// Idle or ctx ends it.
func Recv(ctx context.Context, o RecvOptions) (Stats, error) {
	var st Stats
	c, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", o.Port))
	if err != nil {
		return st, err
	}
	defer c.Close()
	// Room for bursts across many groups (the kernel caps it at rmem_max).
	c.(*net.UDPConn).SetReadBuffer(8 << 20)
	p := ipv4.NewPacketConn(c)
	if err := p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return st, err
	}
	var ifi *net.Interface
	if o.Interface != "" {
		if ifi, err = net.InterfaceByName(o.Interface); err != nil {
			return st, err
		}
	}
	wanted := map[netip.Addr]bool{}
	for _, ch := range o.Channels {
		wanted[ch.Group] = true
	}
	if !o.NoJoin {
		maxG, maxS := o.MaxGroupsPerSocket, o.MaxSourcesPerGroup
		if maxG <= 0 {
			maxG = readSysctl("/proc/sys/net/ipv4/igmp_max_memberships", 20)
		}
		if maxS <= 0 {
			maxS = readSysctl("/proc/sys/net/ipv4/igmp_max_msf", 10)
		}
		plan := PlanSockets(o.Channels, maxG, maxS)
		st.Sockets = len(plan)
		if o.Notice != nil && len(plan) > 1 {
			o.Notice(fmt.Sprintf("joining %d channels over %d sockets: the kernel allows %d groups per socket (net.ipv4.igmp_max_memberships) and %d sources per group (net.ipv4.igmp_max_msf)",
				len(o.Channels), len(plan), maxG, maxS))
		}
		for i, chans := range plan {
			// The first socket reads; the others only hold memberships. They
			// are bound to another port, and the reading socket still gets the
			// traffic because IP_MULTICAST_ALL (on by default) delivers any
			// group joined on the host.
			jp := p
			if i > 0 {
				mc, err := net.ListenPacket("udp4", "0.0.0.0:0")
				if err != nil {
					return st, fmt.Errorf("membership socket %d: %w", i, err)
				}
				defer mc.Close()
				jp = ipv4.NewPacketConn(mc)
			}
			for _, ch := range chans {
				g := &net.UDPAddr{IP: ch.Group.AsSlice()}
				if ch.Source.IsValid() {
					err = jp.JoinSourceSpecificGroup(ifi, g, &net.UDPAddr{IP: ch.Source.AsSlice()})
				} else {
					err = jp.JoinGroup(ifi, g)
				}
				if err != nil {
					return st, fmt.Errorf("join %s on socket %d: %w", ch, i, err)
				}
			}
			st.Joined += len(chans)
		}
	}
	streams := map[streamKey]*Stream{}
	start := time.Now()
	joinedAt, firstAt := start, time.Time{}
	lastPkt := time.Time{}
	lastInterval := start
	var total uint64
	buf := make([]byte, 65536)
	snapshot := func() Stats {
		s := Stats{Elapsed: api.Duration(time.Since(start)), Joined: st.Joined, Sockets: st.Sockets}
		for _, v := range streams {
			v.MissingSample = v.missing(20)
			v.LostInFirst100 = 0
			for q := uint64(0); q < 100; q++ {
				if !v.seen[q] {
					v.LostInFirst100++
				}
			}
			s.Streams = append(s.Streams, v)
		}
		if !firstAt.IsZero() {
			s.FirstAfterJoin = api.Duration(firstAt.Sub(joinedAt))
		}
		sort.Slice(s.Streams, func(i, j int) bool {
			a, b := s.Streams[i], s.Streams[j]
			if a.Group != b.Group {
				return a.Group < b.Group
			}
			return a.Source < b.Source
		})
		return s
	}
	for {
		now := time.Now()
		if ctx.Err() != nil || (o.Duration > 0 && now.Sub(start) >= o.Duration) ||
			(o.Count > 0 && total >= o.Count) || (o.Idle > 0 && !lastPkt.IsZero() && now.Sub(lastPkt) >= o.Idle) {
			break
		}
		if o.Interval != nil && now.Sub(lastInterval) >= time.Second {
			lastInterval = now
			o.Interval(snapshot())
		}
		c.SetReadDeadline(now.Add(100 * time.Millisecond))
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return snapshot(), err
		}
		arrival := time.Now()
		if cm == nil {
			continue
		}
		dst, _ := netip.AddrFromSlice(cm.Dst.To4())
		if !wanted[dst] {
			continue
		}
		if firstAt.IsZero() {
			firstAt = arrival
		}
		sa, _ := netip.AddrFromSlice(src.(*net.UDPAddr).IP.To4())
		total++
		lastPkt = arrival
		b := buf[:n]
		var id uint32
		hasHdr := n >= headerSize && string(b[:4]) == magic
		if hasHdr {
			id = binary.BigEndian.Uint32(b[4:])
		}
		k := streamKey{sa, dst, id}
		s := streams[k]
		if s == nil {
			s = &Stream{Source: sa.String(), Group: dst.String(), Sender: id, seen: map[uint64]bool{}}
			streams[k] = s
		}
		s.TTL = cm.TTL
		var seq uint64
		var sent time.Time
		switch {
		case hasHdr:
			seq = binary.BigEndian.Uint64(b[8:])
			sent = time.Unix(0, int64(binary.BigEndian.Uint64(b[16:])))
		case n >= 12:
			// iperf2 UDP datagram header: int32 id, u32 tv_sec, u32 tv_usec.
			raw := int32(binary.BigEndian.Uint32(b[0:]))
			if raw < 0 {
				s.EndMarks++ // iperf's end-of-stream datagrams carry a negated id
				continue
			}
			s.Foreign++
			seq = uint64(raw)
			sent = time.Unix(int64(binary.BigEndian.Uint32(b[4:])), int64(binary.BigEndian.Uint32(b[8:]))*1000)
		default:
			s.Foreign++
			s.Packets++
			s.Bytes += uint64(n)
			continue
		}
		s.Packets++
		s.Bytes += uint64(n)
		s.account(seq, sent, arrival)
	}
	return snapshot(), nil
}

// missing returns up to n sequence numbers never seen between the first and last.
func (s *Stream) missing(n int) []uint64 {
	if s.Lost == 0 {
		return nil
	}
	var out []uint64
	for q := s.FirstSeq; q <= s.maxSeq && len(out) < n; q++ {
		if !s.seen[q] {
			out = append(out, q)
		}
	}
	return out
}

// account updates sequence and timing statistics with one packet.
func (s *Stream) account(seq uint64, sent, arrival time.Time) {
	if s.seen[seq] {
		s.Dups++
		return
	}
	s.seen[seq] = true
	if !s.started {
		s.started = true
		s.FirstSeq, s.maxSeq = seq, seq
	} else {
		switch {
		case seq < s.maxSeq:
			s.Reordered++
		case seq > s.maxSeq+1:
			s.Gaps++
		}
		if seq < s.FirstSeq {
			s.FirstSeq = seq
		}
		s.maxSeq = max(s.maxSeq, seq)
	}
	s.LastSeq = s.maxSeq
	s.Expected = s.maxSeq - s.FirstSeq + 1
	s.Lost = s.Expected - uint64(len(s.seen))
	// RFC 3550 section 6.4.1 interarrival jitter, in milliseconds.
	transit := float64(arrival.Sub(sent)) / float64(time.Millisecond)
	if s.Packets > 1 {
		d := math.Abs(transit - s.transit)
		s.JitterMS += (api.Millis(d) - s.JitterMS) / 16
	}
	if len(s.seen) == 1 {
		s.FirstLatencyMS = api.Millis(transit)
	}
	s.transit = transit
	s.latencySum += transit
	s.LatencyMS = api.Millis(s.latencySum / float64(len(s.seen)))
}

// ParseGroups parses "239.1.1.1", "239.1.1.1,239.1.1.2" or "239.1.1.1+99" (100 groups).
func ParseGroups(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		base, n := part, 0
		if i := strings.IndexByte(part, '+'); i >= 0 {
			base = part[:i]
			if _, err := fmt.Sscan(part[i+1:], &n); err != nil || n < 0 || n > 65535 {
				return nil, fmt.Errorf("group range %q: want G+N with N up to 65535", part)
			}
		}
		g, err := netip.ParseAddr(base)
		if err != nil || !g.Is4() || !g.IsMulticast() {
			return nil, fmt.Errorf("%q is not an IPv4 multicast group", base)
		}
		for range n + 1 {
			if !g.IsMulticast() {
				return nil, fmt.Errorf("range %q leaves 224.0.0.0/4", part)
			}
			out = append(out, g)
			g = g.Next()
		}
	}
	return slices.Compact(out), nil
}

func (c Channel) String() string {
	if c.Source.IsValid() {
		return fmt.Sprintf("(%s,%s)", c.Source, c.Group)
	}
	return c.Group.String()
}

// PlanSockets spreads channels over as few sockets as the kernel's
// per-socket limits allow: at most maxGroups distinct groups per socket and
// at most maxSources sources per group per socket.
func PlanSockets(chans []Channel, maxGroups, maxSources int) [][]Channel {
	type sock struct {
		chans   []Channel
		sources map[netip.Addr]int // group -> sources joined on this socket
	}
	var socks []*sock
	for _, ch := range chans {
		placed := false
		for _, s := range socks {
			n, has := s.sources[ch.Group]
			if (!has && len(s.sources) < maxGroups) || (has && ch.Source.IsValid() && n < maxSources) {
				s.chans = append(s.chans, ch)
				if ch.Source.IsValid() {
					s.sources[ch.Group]++
				} else {
					s.sources[ch.Group] = n
				}
				placed = true
				break
			}
		}
		if !placed {
			s := &sock{sources: map[netip.Addr]int{}}
			s.chans = append(s.chans, ch)
			if ch.Source.IsValid() {
				s.sources[ch.Group] = 1
			} else {
				s.sources[ch.Group] = 0
			}
			socks = append(socks, s)
		}
	}
	out := make([][]Channel, len(socks))
	for i, s := range socks {
		out[i] = s.chans
	}
	return out
}

func readSysctl(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v <= 0 {
		return def
	}
	return v
}
