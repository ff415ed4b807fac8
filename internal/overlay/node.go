// Package overlay is the pure core of Overcast's overlay: the peers of one
// node (found statically, at run time, or through a store), their
// liveness and round-trip time, and the multicast interest every node
// floods to every peer, so that a node with a source knows, from the
// first packet, exactly which peers want each (S,G) (Receivers).
//
// Events and the time go in (AddPeer, DelPeer, SetInterest, Receive,
// Advance, Flush); datagrams to send come out in a Result. Nothing here
// touches a socket or a clock. docs/OVERLAY.md is the protocol.
package overlay

import (
	"net/netip"
	"slices"
	"time"

	wire "overcast/internal/packet/overlay"
)

// Origin is how a peer became known (a bit set: one peer may be both in
// the config and in the store).
type Origin uint8

const (
	Static Origin = 1 << iota // the config file
	API                       // overcast overlay peer add
	Store                     // the distributed store (etcd)
)

func (o Origin) String() string {
	var out []byte
	for _, x := range []struct {
		o Origin
		s string
	}{{Static, "static"}, {API, "api"}, {Store, "store"}} {
		if o&x.o != 0 {
			if len(out) > 0 {
				out = append(out, ',')
			}
			out = append(out, x.s...)
		}
	}
	return string(out)
}

// Config is one node's overlay settings.
type Config struct {
	Local              netip.AddrPort // this node's underlay address and port
	Key                []byte         // the overlay key: every control message is signed with it
	HelloInterval      time.Duration  // 1 s
	HoldTime           time.Duration  // 3.5 s: a peer silent this long is down
	MaxGroupsPerPeer   int            // 100,000 group records held per peer
	MaxSourcesPerGroup int            // 256 sources per record
}

func (c *Config) defaults() {
	if c.HelloInterval <= 0 {
		c.HelloInterval = time.Second
	}
	if c.HoldTime <= 0 {
		c.HoldTime = c.HelloInterval * 7 / 2
	}
	if c.MaxGroupsPerPeer <= 0 {
		c.MaxGroupsPerPeer = 100_000
	}
	if c.MaxSourcesPerGroup <= 0 {
		c.MaxSourcesPerGroup = 256
	}
}

// Filter is a node's interest in one group: Include the Sources, or
// Exclude them (all others wanted). Sources are sorted.
type Filter struct {
	Mode    wire.Mode
	Sources []netip.Addr
}

// Admits says whether the filter wants source s.
func (f Filter) Admits(s netip.Addr) bool {
	_, in := slices.BinarySearchFunc(f.Sources, s, netip.Addr.Compare)
	return (f.Mode == wire.Exclude) != in
}

// Empty says the filter wants nothing.
func (f Filter) Empty() bool { return f.Mode != wire.Exclude && len(f.Sources) == 0 }

func (f Filter) equal(o Filter) bool { return f.Mode == o.Mode && slices.Equal(f.Sources, o.Sources) }

// Union is the interest of two receivers together (RFC 3376 section 3.2's
// merge of interface states).
func Union(a, b Filter) Filter {
	switch {
	case a.Empty():
		return b
	case b.Empty():
		return a
	case a.Mode == wire.Include && b.Mode == wire.Include:
		return Filter{Mode: wire.Include, Sources: mergeSorted(a.Sources, b.Sources)}
	case a.Mode == wire.Exclude && b.Mode == wire.Exclude:
		var x []netip.Addr
		for _, s := range a.Sources {
			if _, ok := slices.BinarySearchFunc(b.Sources, s, netip.Addr.Compare); ok {
				x = append(x, s)
			}
		}
		return Filter{Mode: wire.Exclude, Sources: x}
	}
	if a.Mode == wire.Include {
		a, b = b, a
	}
	var x []netip.Addr // exclude a minus include b
	for _, s := range a.Sources {
		if _, ok := slices.BinarySearchFunc(b.Sources, s, netip.Addr.Compare); !ok {
			x = append(x, s)
		}
	}
	return Filter{Mode: wire.Exclude, Sources: x}
}

func mergeSorted(a, b []netip.Addr) []netip.Addr {
	out := append(slices.Clone(a), b...)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Datagram is one control message to send.
type Datagram struct {
	To netip.AddrPort
	B  []byte
}

// PeerEvent is a peer coming up or going down (for the log).
type PeerEvent struct {
	Peer   netip.AddrPort
	Up     bool
	Reason string
}

// Result is what an event asks of the outside: datagrams to send, the
// groups whose set of interested peers changed (their routes are
// re-derived), and peers that changed state.
type Result struct {
	Send   []Datagram
	Groups []netip.Addr
	Events []PeerEvent
}

func (r *Result) group(g netip.Addr) { r.Groups = append(r.Groups, g) }

// PeerStats counts one peer's control traffic.
type PeerStats struct {
	HellosIn, HellosOut     uint64
	InterestIn, InterestOut uint64
	SyncIn, SyncOut         uint64
	DumpsIn, DumpsOut       uint64
	AuthFailed              uint64 // wrong key or altered in transit
	Replayed                uint64 // an old epoch or sequence number
	Malformed               uint64
	OverLimit               uint64 // records dropped over MaxGroupsPerPeer / MaxSourcesPerGroup
	OutOfOrder              uint64 // deltas that did not follow the version held (a dump was asked for)
}

type peer struct {
	addr     netip.AddrPort
	origins  Origin
	up       bool
	upSince  time.Time
	heard    time.Time // last authenticated message
	hold     time.Duration
	epoch    uint64
	seq      uint64
	version  uint64 // the peer's interest version whose records we hold
	synced   bool   // version is the peer's current one
	interest map[netip.Addr]Filter
	dump     *dump
	lastSync time.Time // last SyncRequest sent
	lastDump time.Time // last dump sent
	rxSent   uint64    // the peer's last Hello.Sent, echoed back
	rxAt     time.Time
	rtt      time.Duration
	stats    PeerStats
}

// dump is a full dump of a peer's interest being received.
type dump struct {
	version uint64
	parts   map[uint16]bool
	total   int // 0 until the last part arrived
	records map[netip.Addr]Filter
	over    bool
}

// Node is one overlay node's state.
type Node struct {
	cfg     Config
	epoch   uint64
	seq     uint64
	peers   map[netip.AddrPort]*peer
	local   map[netip.Addr]Filter
	version uint64
	pending map[netip.Addr]bool // local groups changed since the last Flush
	byGroup map[netip.Addr]map[netip.AddrPort]bool
	next    time.Time // next hello round

	UnknownPeer uint64 // control messages from addresses that are not peers
}

// New starts a node at now; its epoch is now (a restart has a larger one).
func New(cfg Config, now time.Time) *Node {
	cfg.defaults()
	return &Node{cfg: cfg, epoch: uint64(now.UnixNano()), peers: map[netip.AddrPort]*peer{},
		local: map[netip.Addr]Filter{}, pending: map[netip.Addr]bool{}, byGroup: map[netip.Addr]map[netip.AddrPort]bool{},
		next: now}
}

// Config is the node's settings (defaults filled).
func (n *Node) Config() Config { return n.cfg }

// SetTimers changes the hello interval and hold time (reload).
func (n *Node) SetTimers(hello, hold time.Duration) {
	n.cfg.HelloInterval, n.cfg.HoldTime = hello, hold
	n.cfg.defaults()
}

func (n *Node) send(r *Result, to netip.AddrPort, m wire.Message) {
	n.seq++
	r.Send = append(r.Send, Datagram{To: to, B: wire.Marshal(n.cfg.Key, wire.Header{Epoch: n.epoch, Seq: n.seq}, m)})
}

// AddPeer makes addr a peer (or adds an origin to one). A new peer is
// greeted at once.
func (n *Node) AddPeer(addr netip.AddrPort, o Origin, now time.Time) (r Result) {
	if addr == n.cfg.Local || !addr.IsValid() {
		return
	}
	if p := n.peers[addr]; p != nil {
		p.origins |= o
		return
	}
	p := &peer{addr: addr, origins: o, hold: n.cfg.HoldTime}
	n.peers[addr] = p
	n.hello(&r, p, now)
	return
}

// DelPeer removes an origin from a peer; the peer goes with its last
// origin, and with it its interest.
func (n *Node) DelPeer(addr netip.AddrPort, o Origin) (r Result) {
	p := n.peers[addr]
	if p == nil {
		return
	}
	p.origins &^= o
	if p.origins != 0 {
		return
	}
	n.setInterest(&r, p, nil)
	delete(n.peers, addr)
	if p.up {
		r.Events = append(r.Events, PeerEvent{Peer: addr, Up: false, Reason: "removed"})
	}
	return
}

// HasPeer says whether addr is a peer.
func (n *Node) HasPeer(addr netip.AddrPort) bool { return n.peers[addr] != nil }

// PeerAddrs lists the peers, sorted (whose datagrams the data plane accepts).
func (n *Node) PeerAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(n.peers))
	for a := range n.peers {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// UpPeers lists the peers that are up, sorted.
func (n *Node) UpPeers() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range n.PeerAddrs() {
		if n.peers[a].up {
			out = append(out, a)
		}
	}
	return out
}

// SetInterest records this node's interest in g (an empty filter: none).
// It goes to the peers at the next Flush.
func (n *Node) SetInterest(g netip.Addr, f Filter) {
	old, had := n.local[g]
	if f.Empty() {
		if had {
			delete(n.local, g)
			n.pending[g] = true
		}
		return
	}
	if len(f.Sources) > n.cfg.MaxSourcesPerGroup {
		f.Sources = f.Sources[:n.cfg.MaxSourcesPerGroup]
	}
	if had && old.equal(f) {
		return
	}
	n.local[g] = f
	n.pending[g] = true
}

// Interest is this node's interest in g.
func (n *Node) Interest(g netip.Addr) (Filter, bool) {
	f, ok := n.local[g]
	return f, ok
}

// LocalGroups lists the groups this node wants.
func (n *Node) LocalGroups() []netip.Addr {
	out := make([]netip.Addr, 0, len(n.local))
	for g := range n.local {
		out = append(out, g)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (n *Node) record(g netip.Addr) wire.Record {
	f, ok := n.local[g]
	if !ok {
		return wire.Record{Group: g, Mode: wire.Include}
	}
	return wire.Record{Group: g, Mode: f.Mode, Sources: f.Sources}
}

// Flush sends the interest changes since the last Flush to every peer
// that is up, as deltas (one version per datagram).
func (n *Node) Flush(now time.Time) (r Result) {
	if len(n.pending) == 0 {
		return
	}
	gs := make([]netip.Addr, 0, len(n.pending))
	for g := range n.pending {
		gs = append(gs, g)
	}
	clear(n.pending)
	slices.SortFunc(gs, netip.Addr.Compare)
	recs := make([]wire.Record, len(gs))
	for i, g := range gs {
		recs[i] = n.record(g)
	}
	for _, part := range wire.PackRecords(recs) {
		m := wire.Interest{From: n.version, To: n.version + 1, Records: part}
		n.version++
		for _, a := range n.PeerAddrs() {
			if p := n.peers[a]; p.up {
				p.stats.InterestOut++
				n.send(&r, a, m)
			}
		}
	}
	return
}

// sendDump sends every local record of the current version to p.
func (n *Node) sendDump(r *Result, p *peer, now time.Time) {
	recs := make([]wire.Record, 0, len(n.local))
	for _, g := range n.LocalGroups() {
		recs = append(recs, n.record(g))
	}
	parts := wire.PackRecords(recs)
	for i, part := range parts {
		m := wire.Interest{To: n.version, Flags: wire.FlagDump, Part: uint16(i), Records: part}
		if i == len(parts)-1 {
			m.Flags |= wire.FlagDumpEnd
		}
		n.send(r, p.addr, m)
	}
	p.lastDump = now
	p.stats.DumpsOut++
}

func (n *Node) hello(r *Result, p *peer, now time.Time) {
	m := wire.Hello{InterestVersion: n.version, Sent: uint64(now.UnixNano()), HoldMillis: uint32(n.cfg.HoldTime / time.Millisecond)}
	if p.rxSent != 0 {
		m.Echo = p.rxSent
		m.EchoDelay = uint32(now.Sub(p.rxAt) / time.Microsecond)
	}
	p.stats.HellosOut++
	n.send(r, p.addr, m)
}

// NextDeadline is when Advance has work: the next hello round or the
// first peer to time out.
func (n *Node) NextDeadline() time.Time {
	t := n.next
	for _, p := range n.peers {
		if p.up {
			if d := p.heard.Add(p.hold); d.Before(t) {
				t = d
			}
		}
	}
	return t
}

// Advance sends the hellos that are due and takes down silent peers.
func (n *Node) Advance(now time.Time) (r Result) {
	for _, a := range n.PeerAddrs() {
		p := n.peers[a]
		if p.up && now.Sub(p.heard) >= p.hold {
			n.down(&r, p, "hold time expired")
		}
	}
	if !now.Before(n.next) {
		for _, a := range n.PeerAddrs() {
			n.hello(&r, n.peers[a], now)
		}
		n.next = now.Add(n.cfg.HelloInterval)
	}
	return
}

func (n *Node) down(r *Result, p *peer, why string) {
	p.up = false
	p.synced, p.version, p.dump, p.rtt, p.rxSent = false, 0, nil, 0, 0
	n.setInterest(r, p, nil)
	r.Events = append(r.Events, PeerEvent{Peer: p.addr, Up: false, Reason: why})
}

// setInterest replaces p's interest, noting the groups whose filter changed.
func (n *Node) setInterest(r *Result, p *peer, next map[netip.Addr]Filter) {
	for g, f := range p.interest {
		if nf, ok := next[g]; !ok || !nf.equal(f) {
			r.group(g)
		}
		if _, ok := next[g]; !ok {
			n.unindex(g, p.addr)
		}
	}
	for g, f := range next {
		if of, ok := p.interest[g]; !ok || !of.equal(f) {
			if !ok {
				r.group(g)
			}
			n.index(g, p.addr)
		}
	}
	p.interest = next
}

func (n *Node) index(g netip.Addr, a netip.AddrPort) {
	m := n.byGroup[g]
	if m == nil {
		m = map[netip.AddrPort]bool{}
		n.byGroup[g] = m
	}
	m[a] = true
}

func (n *Node) unindex(g netip.Addr, a netip.AddrPort) {
	if m := n.byGroup[g]; m != nil {
		delete(m, a)
		if len(m) == 0 {
			delete(n.byGroup, g)
		}
	}
}

// apply puts records into an interest map, within the limits.
func (n *Node) apply(p *peer, into map[netip.Addr]Filter, recs []wire.Record) (over bool) {
	for _, rec := range recs {
		if rec.Group.IsLinkLocalMulticast() {
			continue
		}
		if rec.Mode == wire.Include && len(rec.Sources) == 0 {
			delete(into, rec.Group)
			continue
		}
		src := slices.Clone(rec.Sources)
		slices.SortFunc(src, netip.Addr.Compare)
		src = slices.Compact(src)
		if len(src) > n.cfg.MaxSourcesPerGroup {
			src, over = src[:n.cfg.MaxSourcesPerGroup], true
		}
		if _, ok := into[rec.Group]; !ok && len(into) >= n.cfg.MaxGroupsPerPeer {
			over = true
			continue
		}
		into[rec.Group] = Filter{Mode: rec.Mode, Sources: src}
	}
	if over {
		p.stats.OverLimit++
	}
	return over
}

// Receive handles a control datagram from an underlay address.
func (n *Node) Receive(from netip.AddrPort, b []byte, now time.Time) (r Result) {
	p := n.peers[from]
	if p == nil {
		n.UnknownPeer++
		return
	}
	h, m, err := wire.Parse(n.cfg.Key, b)
	switch {
	case err == wire.ErrAuth:
		p.stats.AuthFailed++
		return
	case err != nil:
		p.stats.Malformed++
		return
	}
	switch {
	case h.Epoch < p.epoch, h.Epoch == p.epoch && h.Seq <= p.seq:
		p.stats.Replayed++
		return
	case h.Epoch > p.epoch && p.epoch != 0:
		// The peer restarted: what it said before is gone.
		p.synced, p.version, p.dump, p.rxSent = false, 0, nil, 0
		n.setInterest(&r, p, nil)
	}
	p.epoch, p.seq = h.Epoch, h.Seq
	p.heard = now
	if !p.up {
		p.up, p.upSince = true, now
		r.Events = append(r.Events, PeerEvent{Peer: from, Up: true})
		if _, isHello := m.(wire.Hello); !isHello {
			n.hello(&r, p, now)
		}
	}
	switch m := m.(type) {
	case wire.Hello:
		p.stats.HellosIn++
		first := p.rxSent == 0
		p.rxSent, p.rxAt = m.Sent, now
		if m.HoldMillis > 0 {
			p.hold = time.Duration(m.HoldMillis) * time.Millisecond
		}
		if m.Echo != 0 {
			if rtt := time.Duration(uint64(now.UnixNano())-m.Echo) - time.Duration(m.EchoDelay)*time.Microsecond; rtt >= 0 {
				p.rtt = rtt
			}
		}
		if first {
			n.hello(&r, p, now) // so that the peer sees us up without waiting a round
		}
		switch {
		case m.InterestVersion == p.version:
			p.synced = true
		case p.dump != nil && p.dump.version == m.InterestVersion:
			// a dump of that version is arriving
		default:
			p.synced = false
			n.requestSync(&r, p, now)
		}
	case wire.Interest:
		p.stats.InterestIn++
		n.interest(&r, p, m, now)
	case wire.SyncRequest:
		p.stats.SyncIn++
		if p.lastDump.IsZero() || now.Sub(p.lastDump) >= n.cfg.HelloInterval/2 {
			n.sendDump(&r, p, now)
		}
	}
	return
}

func (n *Node) requestSync(r *Result, p *peer, now time.Time) {
	if !p.lastSync.IsZero() && now.Sub(p.lastSync) < n.cfg.HelloInterval/2 {
		return
	}
	p.lastSync = now
	p.stats.SyncOut++
	n.send(r, p.addr, wire.SyncRequest{Known: p.version})
}

func (n *Node) interest(r *Result, p *peer, m wire.Interest, now time.Time) {
	if m.Flags&wire.FlagDump == 0 {
		if m.From != p.version {
			p.stats.OutOfOrder++
			p.synced = false
			n.requestSync(r, p, now)
			return
		}
		next := make(map[netip.Addr]Filter, len(p.interest)+len(m.Records))
		for g, f := range p.interest {
			next[g] = f
		}
		n.apply(p, next, m.Records)
		n.setInterest(r, p, next)
		p.version, p.synced = m.To, true
		return
	}
	d := p.dump
	if d == nil || d.version != m.To {
		d = &dump{version: m.To, parts: map[uint16]bool{}, records: map[netip.Addr]Filter{}}
		p.dump = d
	}
	if d.parts[m.Part] {
		return
	}
	if len(d.parts) >= 1+n.cfg.MaxGroupsPerPeer/8 {
		p.stats.OverLimit++ // more parts than any dump within the limit needs
		p.dump = nil
		return
	}
	d.parts[m.Part] = true
	n.apply(p, d.records, m.Records)
	if m.Flags&wire.FlagDumpEnd != 0 {
		d.total = int(m.Part) + 1
	}
	if d.total > 0 && len(d.parts) == d.total {
		p.stats.DumpsIn++
		n.setInterest(r, p, d.records)
		p.version, p.synced, p.dump = d.version, true, nil
	}
}

// Receivers lists the peers that want source s of group g, sorted: the
// replication list of (S,G).
func (n *Node) Receivers(s, g netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for a := range n.byGroup[g] {
		if p := n.peers[a]; p != nil && p.interest[g].Admits(s) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// Why is a peer's interest in g (why it is on a replication list).
func (n *Node) Why(a netip.AddrPort, g netip.Addr) (Filter, bool) {
	p := n.peers[a]
	if p == nil {
		return Filter{}, false
	}
	f, ok := p.interest[g]
	return f, ok
}

// Remote is the union of every peer's interest in g: what the peers
// want, as one receiver on the overlay device (for PIM at a gateway).
func (n *Node) Remote(g netip.Addr) Filter {
	var f Filter
	for a := range n.byGroup[g] {
		if p := n.peers[a]; p != nil {
			f = Union(f, p.interest[g])
		}
	}
	return f
}

// RemoteGroups lists the groups some peer wants, sorted.
func (n *Node) RemoteGroups() []netip.Addr {
	out := make([]netip.Addr, 0, len(n.byGroup))
	for g := range n.byGroup {
		out = append(out, g)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// PeerView is one peer as `show overlay peers` prints it.
type PeerView struct {
	Addr    netip.AddrPort
	Origins Origin
	Up      bool
	UpSince time.Time
	Heard   time.Time
	RTT     time.Duration
	Groups  int
	Version uint64
	Synced  bool
	Stats   PeerStats
}

// Peers lists the peers, sorted by address.
func (n *Node) Peers() []PeerView {
	out := make([]PeerView, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, PeerView{Addr: p.addr, Origins: p.origins, Up: p.up, UpSince: p.upSince, Heard: p.heard,
			RTT: p.rtt, Groups: len(p.interest), Version: p.version, Synced: p.synced, Stats: p.stats})
	}
	slices.SortFunc(out, func(a, b PeerView) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Version is this node's interest version.
func (n *Node) Version() uint64 { return n.version }
