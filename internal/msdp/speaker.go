package msdp

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	wire "overcast/internal/packet/msdp"
)

// State is a peer's state (RFC 3618 section 11).
type State int

const (
	Disabled State = iota
	Inactive
	Listen
	Connecting
	Established
)

func (s State) String() string {
	return [...]string{"Disabled", "Inactive", "Listen", "Connecting", "Established"}[s]
}

// SG is a source and group.
type SG struct{ S, G netip.Addr }

// Route is what the router knows of the path toward an address: the
// table and protocol that chose it, the next hop, and for BGP routes the
// neighbour that advertised it and the AS path.
type Route struct {
	Table    string // "mbgp" or "unicast"
	Protocol string
	Prefix   netip.Prefix
	NextHop  netip.Addr // zero when connected
	Iface    string
	BGP      *BGPPath
}

// BGPPath is a BGP best path's origin.
type BGPPath struct {
	Peer     netip.Addr // the neighbour it came from
	PeerAS   uint32
	External bool
	ASPath   []uint32
}

// Routes looks routes up for peer-RPF (MBGP first, then unicast).
type Routes interface {
	RouteTo(a netip.Addr) (Route, bool)
}

// Dial asks the daemon to open the TCP session to Peer from Local.
type Dial struct {
	Peer, Local netip.Addr
	Password    string
}

// Out is bytes to write on a peer's session.
type Out struct {
	Peer  netip.Addr
	Bytes []byte
}

// Close asks the daemon to close a peer's session.
type Close struct {
	Peer   netip.Addr
	Reason string
}

// Active is a source newly learned from an SA: PIM at this RP joins
// toward it when the group has receivers. Data is the packet the SA
// carried, if any.
type Active struct {
	SG
	RP   netip.Addr
	Data []byte
	New  bool // first SA for this (S,G) from this RP (else: a known one carrying data)
}

// Event is a peer change, for the log.
type Event struct {
	Peer   netip.Addr
	State  State
	Reason string
}

// Result is what a call wants done.
type Result struct {
	Dials   []Dial
	Sends   []Out
	Closes  []Close
	Learned []Active
	Events  []Event
}

// PeerStats counts a peer's messages and drops.
type PeerStats struct {
	SAIn, SAOut                 uint64 // SA messages
	SAEntriesIn, SAEntriesOut   uint64
	RequestsIn, ResponsesIn     uint64
	KeepalivesIn, KeepalivesOut uint64
	DataIn                      uint64 // SAs that carried a data packet
	RPFFailures                 uint64 // SAs dropped: not from the peer-RPF peer
	FilteredIn, FilteredOut     uint64 // entries
	LimitDrops                  uint64 // entries over the SA limit
	OwnSAs                      uint64 // SAs naming this router as originator
	Unknown                     uint64 // TLVs of unknown type
	Malformed                   uint64
	Resets                      uint64
	Refused                     uint64 // connections refused (wrong side)
}

type peer struct {
	cfg     PeerConfig
	state   State
	active  bool // this side connects
	since   time.Time
	retryAt time.Time // Connecting: next dial
	holdAt  time.Time // Established: hold timer
	kaAt    time.Time // Established: next keepalive
	rx      []byte
	stats   PeerStats
	reason  string // last reset
	cached  int    // SAs in the cache learned from this peer
	fails   int    // dials failed in a row
}

// The cache is kept compact: at 100,000 SAs every byte counts (IPv4
// addresses as 4 bytes, times as Unix nanoseconds, per-group slices).
type a4 [4]byte

func to4(a netip.Addr) a4     { return a.As4() }
func (a a4) addr() netip.Addr { return netip.AddrFrom4(a) }

type cacheKey struct{ S, G, RP a4 }

type saEntry struct {
	peer    a4 // learned from
	created int64
	expires int64
}

func key(s, g, rp netip.Addr) cacheKey { return cacheKey{S: to4(s), G: to4(g), RP: to4(rp)} }

// Speaker is one router's MSDP core.
type Speaker struct {
	cfg     Config
	routes  Routes
	peers   map[netip.Addr]*peer
	cache   map[cacheKey]saEntry
	byG     map[a4][]cacheKey // the cached SAs of each group
	local   map[SG]time.Time  // originated, with when first seen
	advAt   time.Time         // next SA-Advertisement
	sweepAt time.Time         // next pass over the cache for expired SAs
	res     Result

	// Totals over all peers that outlive a peer's removal.
	limitDrops uint64
}

// New builds a speaker; Start begins the sessions.
func New(cfg Config, routes Routes) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Speaker{cfg: cfg.withDefaults(), routes: routes, peers: map[netip.Addr]*peer{},
		cache: map[cacheKey]saEntry{}, byG: map[a4][]cacheKey{}, local: map[SG]time.Time{}}
	return s, nil
}

func (s *Speaker) take() Result {
	r := s.res
	s.res = Result{}
	return r
}

// Start brings every configured peer up.
func (s *Speaker) Start(now time.Time) Result {
	for _, pc := range s.cfg.Peers {
		s.addPeer(now, pc)
	}
	s.advAt = now.Add(s.cfg.SAAdvertisement)
	return s.take()
}

func (s *Speaker) addPeer(now time.Time, pc PeerConfig) {
	p := &peer{cfg: pc, active: pc.Local.Less(pc.Address)}
	s.peers[pc.Address] = p
	s.idle(now, p)
}

// idle puts a peer in the state that waits for a session: connecting
// (dial now or at the retry timer) or listening.
func (s *Speaker) idle(now time.Time, p *peer) {
	p.rx = nil
	if p.active {
		s.setState(now, p, Connecting, p.reason)
		if p.retryAt.IsZero() || !p.retryAt.After(now) {
			s.dial(now, p)
		}
	} else {
		s.setState(now, p, Listen, p.reason)
	}
}

func (s *Speaker) dial(now time.Time, p *peer) {
	p.retryAt = now.Add(s.cfg.ConnectRetry)
	s.res.Dials = append(s.res.Dials, Dial{Peer: p.cfg.Address, Local: p.cfg.Local, Password: p.cfg.Password})
}

func (s *Speaker) setState(now time.Time, p *peer, st State, reason string) {
	if p.state == st {
		return
	}
	p.state, p.since = st, now
	s.res.Events = append(s.res.Events, Event{Peer: p.cfg.Address, State: st, Reason: reason})
}

// Accept decides on a connection a peer opened to this router's listener.
func (s *Speaker) Accept(now time.Time, remote, local netip.Addr) (bool, string, Result) {
	p := s.peers[remote]
	switch {
	case p == nil:
		return false, "not a configured MSDP peer", s.take()
	case p.active:
		p.stats.Refused++
		return false, fmt.Sprintf("this side (%s) has the lower address and connects; the peer should listen", p.cfg.Local), s.take()
	case p.state == Established:
		p.stats.Refused++
		return false, "a session is already established", s.take()
	case local.IsValid() && local != p.cfg.Local:
		p.stats.Refused++
		return false, fmt.Sprintf("connection to %s, but the session is configured from %s", local, p.cfg.Local), s.take()
	}
	s.established(now, p)
	return true, "", s.take()
}

// Connected reports that a dial to peer succeeded.
func (s *Speaker) Connected(now time.Time, peer netip.Addr) Result {
	p := s.peers[peer]
	if p == nil || p.state != Connecting {
		s.res.Closes = append(s.res.Closes, Close{Peer: peer, Reason: "no session wanted"})
		return s.take()
	}
	s.established(now, p)
	return s.take()
}

func (s *Speaker) established(now time.Time, p *peer) {
	p.rx = nil
	p.holdAt = now.Add(s.cfg.HoldTime)
	p.reason, p.fails = "", 0
	s.setState(now, p, Established, "")
	s.sendKeepalive(now, p)
	// The new peer learns at once what this router originates and what
	// its cache holds that would be forwarded to it.
	s.advertiseTo(now, p)
	byRP := map[netip.Addr][]wire.Entry{}
	for k, e := range s.sortedCache() {
		if from := e.peer.addr(); from == p.cfg.Address || s.sameMesh(from, p.cfg.Address) {
			continue
		}
		byRP[k.RP.addr()] = append(byRP[k.RP.addr()], wire.Entry{Source: k.S.addr(), Group: k.G.addr()})
	}
	for _, rp := range sortedAddrs(byRP) {
		s.sendSA(p, &wire.SA{RP: rp, Entries: byRP[rp]})
	}
}

// DialFailed reports that a dial to peer failed; the retry timer redials.
func (s *Speaker) DialFailed(now time.Time, peer netip.Addr, err error) Result {
	if p := s.peers[peer]; p != nil && p.state == Connecting {
		p.reason = "connect: " + err.Error()
		// A refused dial (the peer not yet listening, as when two RPs
		// start together) is retried after 1, 2, 4 ... seconds, up to
		// ConnectRetry-Period, rather than a whole period later.
		p.fails++
		if d := time.Second << min(p.fails-1, 5); d < s.cfg.ConnectRetry {
			p.retryAt = now.Add(d)
		}
	}
	return s.take()
}

// Closed reports that a peer's session ended (the peer closed it, or a
// write failed).
func (s *Speaker) Closed(now time.Time, peer netip.Addr, reason string) Result {
	if p := s.peers[peer]; p != nil && p.state == Established {
		s.reset(now, p, reason, false)
	}
	return s.take()
}

// reset ends an established session; cached SAs stay until they time
// out (the peer may be back before then).
func (s *Speaker) reset(now time.Time, p *peer, reason string, closeIt bool) {
	p.stats.Resets++
	p.reason = reason
	if closeIt {
		s.res.Closes = append(s.res.Closes, Close{Peer: p.cfg.Address, Reason: reason})
	}
	p.retryAt = now.Add(s.cfg.ConnectRetry)
	s.idle(now, p)
}

// Received handles bytes read from a peer's session.
func (s *Speaker) Received(now time.Time, peer netip.Addr, b []byte) Result {
	p := s.peers[peer]
	if p == nil || p.state != Established {
		return s.take()
	}
	p.rx = append(p.rx, b...)
	for len(p.rx) > 0 && p.state == Established {
		m, n, err := wire.Next(p.rx)
		if errors.Is(err, wire.ErrShort) {
			break
		}
		if err != nil {
			p.stats.Malformed++
			s.reset(now, p, "malformed message: "+err.Error(), true)
			break
		}
		p.rx = p.rx[n:]
		p.holdAt = now.Add(s.cfg.HoldTime)
		s.message(now, p, m)
	}
	if len(p.rx) == 0 {
		p.rx = nil
	}
	return s.take()
}

func (s *Speaker) message(now time.Time, p *peer, m wire.Message) {
	switch m := m.(type) {
	case wire.Keepalive:
		p.stats.KeepalivesIn++
	case *wire.SA:
		if m.Response {
			p.stats.ResponsesIn++
		} else {
			p.stats.SAIn++
		}
		s.receiveSA(now, p, m)
	case *wire.SARequest:
		p.stats.RequestsIn++
		s.answerRequest(p, m.Group)
	default:
		p.stats.Unknown++
	}
}

// receiveSA is RFC 3618 section 10: peer-RPF, filters, the cache, and
// forwarding to the other peers. An SA-Response is cached, not forwarded.
func (s *Speaker) receiveSA(now time.Time, p *peer, m *wire.SA) {
	p.stats.SAEntriesIn += uint64(len(m.Entries))
	if len(m.Data) > 0 {
		p.stats.DataIn++
	}
	if m.RP == s.cfg.Originator || s.isLocalAddr(m.RP) {
		p.stats.OwnSAs++
		return
	}
	if !s.inMesh(p) {
		if rpf, _, ok := s.rpfPeer(m.RP); !ok || rpf != p.cfg.Address {
			p.stats.RPFFailures++
			return
		}
	}
	in, _ := s.cfg.policy(p.cfg.FilterIn)
	var kept []wire.Entry
	for i, e := range m.Entries {
		if p.cfg.FilterIn != "" && !in.Permits(e.Source, e.Group, m.RP) {
			p.stats.FilteredIn++
			continue
		}
		if !e.Group.IsMulticast() || !e.Source.Is4() || e.Source.IsMulticast() || e.Source.IsUnspecified() {
			p.stats.FilteredIn++
			continue
		}
		k := key(e.Source, e.Group, m.RP)
		c, ok := s.cache[k]
		if !ok {
			if len(s.cache) >= s.cfg.SALimit || (p.cfg.SALimit > 0 && p.cached >= p.cfg.SALimit) {
				p.stats.LimitDrops++
				s.limitDrops++
				continue
			}
			c = saEntry{peer: to4(p.cfg.Address), created: now.UnixNano()}
			s.byG[k.G] = append(s.byG[k.G], k)
			p.cached++
			if s.sweepAt.IsZero() {
				s.sweepAt = now.Add(sweepEvery)
			}
			a := Active{SG: SG{S: e.Source, G: e.Group}, RP: m.RP, New: true}
			if i == 0 && len(m.Data) > 0 {
				a.Data = m.Data
			}
			s.res.Learned = append(s.res.Learned, a)
		} else if i == 0 && len(m.Data) > 0 {
			// A known source's SA with data: the packet is delivered too.
			s.res.Learned = append(s.res.Learned, Active{SG: SG{S: e.Source, G: e.Group}, RP: m.RP, Data: m.Data})
		}
		if from := c.peer.addr(); ok && from != p.cfg.Address {
			// Learned again from another accepted peer (the RPF peer
			// changed): it is now this one's.
			if q := s.peers[from]; q != nil {
				q.cached--
			}
			c.peer = to4(p.cfg.Address)
			p.cached++
		}
		c.expires = now.Add(s.cfg.SAState).UnixNano()
		s.cache[k] = c
		kept = append(kept, e)
	}
	if len(kept) == 0 || m.Response {
		return
	}
	fwd := &wire.SA{RP: m.RP, Entries: kept}
	if len(m.Data) > 0 && kept[0] == m.Entries[0] {
		fwd.Data = m.Data
	}
	for _, q := range s.sortedPeers() {
		if q == p || q.state != Established || s.sameMesh(p.cfg.Address, q.cfg.Address) {
			continue
		}
		s.sendSA(q, fwd)
	}
}

// answerRequest sends an SA-Response of the cached sources of g.
func (s *Speaker) answerRequest(p *peer, g netip.Addr) {
	byRP := map[netip.Addr][]wire.Entry{}
	for _, k := range s.byG[to4(g)] {
		byRP[k.RP.addr()] = append(byRP[k.RP.addr()], wire.Entry{Source: k.S.addr(), Group: k.G.addr()})
	}
	for sg := range s.local {
		if sg.G == g {
			byRP[s.cfg.Originator] = append(byRP[s.cfg.Originator], wire.Entry{Source: sg.S, Group: sg.G})
		}
	}
	for _, rp := range sortedAddrs(byRP) {
		es := byRP[rp]
		slices.SortFunc(es, func(a, b wire.Entry) int { return a.Source.Compare(b.Source) })
		for _, m := range wire.SplitSA(rp, es) {
			m.Response = true
			s.send(p, m.Marshal())
		}
	}
}

// Request sends an SA-Request for g to peer.
func (s *Speaker) Request(peer, g netip.Addr) (Result, error) {
	p := s.peers[peer]
	if p == nil || p.state != Established {
		return Result{}, fmt.Errorf("msdp peer %s is not established", peer)
	}
	s.send(p, (&wire.SARequest{Group: g}).Marshal())
	return s.take(), nil
}

// sendSA sends m to q through q's outbound filter, split to fit.
func (s *Speaker) sendSA(q *peer, m *wire.SA) {
	es := m.Entries
	if q.cfg.FilterOut != "" {
		out, _ := s.cfg.policy(q.cfg.FilterOut)
		es = nil
		for _, e := range m.Entries {
			if out.Permits(e.Source, e.Group, m.RP) {
				es = append(es, e)
			} else {
				q.stats.FilteredOut++
			}
		}
	}
	if len(es) == 0 {
		return
	}
	parts := wire.SplitSA(m.RP, es)
	if len(m.Data) > 0 && es[0] == m.Entries[0] && wire.MaxLen-len(parts[0].Marshal()) >= len(m.Data) {
		parts[0].Data = m.Data
	}
	for _, x := range parts {
		q.stats.SAOut++
		q.stats.SAEntriesOut += uint64(len(x.Entries))
		s.send(q, x.Marshal())
	}
}

func (s *Speaker) send(q *peer, b []byte) {
	s.res.Sends = append(s.res.Sends, Out{Peer: q.cfg.Address, Bytes: b})
}

func (s *Speaker) sendKeepalive(now time.Time, p *peer) {
	p.stats.KeepalivesOut++
	s.res.Sends = append(s.res.Sends, Out{Peer: p.cfg.Address, Bytes: wire.Keepalive{}.Marshal()})
	p.kaAt = now.Add(s.cfg.Keepalive)
}

// Originate sets the sources this router originates SAs for (sources
// registered to it as RP, or directly connected to it as RP). New ones
// are advertised at once; the rest every SA-Advertisement-Period.
func (s *Speaker) Originate(now time.Time, active []SG) Result {
	want := make(map[SG]bool, len(active))
	var fresh []wire.Entry
	for _, sg := range active {
		want[sg] = true
		if _, ok := s.local[sg]; !ok {
			s.local[sg] = now
			fresh = append(fresh, wire.Entry{Source: sg.S, Group: sg.G})
		}
	}
	for sg := range s.local {
		if !want[sg] {
			delete(s.local, sg)
		}
	}
	if len(fresh) > 0 && s.cfg.Originator.IsValid() {
		slices.SortFunc(fresh, func(a, b wire.Entry) int { return cmp.Or(a.Group.Compare(b.Group), a.Source.Compare(b.Source)) })
		for _, p := range s.sortedPeers() {
			if p.state == Established {
				s.sendSA(p, &wire.SA{RP: s.cfg.Originator, Entries: fresh})
			}
		}
	}
	return s.take()
}

// OriginateData sends one SA for (S,G) carrying the source's first data
// packet, to every established peer (RFC 3618 section 3: the RP may
// encapsulate the first data packet it received in a Register).
func (s *Speaker) OriginateData(now time.Time, sg SG, pkt []byte) Result {
	if !s.cfg.Originator.IsValid() || len(pkt) > wire.MaxLen-8-12 {
		return s.take()
	}
	if _, ok := s.local[sg]; !ok {
		s.local[sg] = now
	}
	for _, p := range s.sortedPeers() {
		if p.state == Established {
			s.sendSA(p, &wire.SA{RP: s.cfg.Originator, Entries: []wire.Entry{{Source: sg.S, Group: sg.G}}, Data: pkt})
		}
	}
	return s.take()
}

func (s *Speaker) advertiseTo(now time.Time, p *peer) {
	if len(s.local) == 0 || !s.cfg.Originator.IsValid() {
		return
	}
	es := make([]wire.Entry, 0, len(s.local))
	for sg := range s.local {
		es = append(es, wire.Entry{Source: sg.S, Group: sg.G})
	}
	slices.SortFunc(es, func(a, b wire.Entry) int { return cmp.Or(a.Group.Compare(b.Group), a.Source.Compare(b.Source)) })
	s.sendSA(p, &wire.SA{RP: s.cfg.Originator, Entries: es})
}

// sweepEvery is how often the cache is swept for expired SAs.
const sweepEvery = 10 * time.Second

// Advance runs the timers due at now.
func (s *Speaker) Advance(now time.Time) Result {
	for _, p := range s.sortedPeers() {
		switch p.state {
		case Connecting:
			if !p.retryAt.After(now) {
				s.dial(now, p)
			}
		case Established:
			if !p.holdAt.After(now) {
				s.reset(now, p, "hold timer expired: nothing received for "+s.cfg.HoldTime.String(), true)
				continue
			}
			if !p.kaAt.After(now) {
				s.sendKeepalive(now, p)
			}
		}
	}
	if !s.advAt.After(now) {
		s.advAt = now.Add(s.cfg.SAAdvertisement)
		for _, p := range s.sortedPeers() {
			if p.state == Established {
				s.advertiseTo(now, p)
			}
		}
	}
	if !s.sweepAt.IsZero() && !s.sweepAt.After(now) {
		// Every sweepEvery: a pass over 100,000 SAs is not free, and an
		// SA a few seconds past its 150 s matters to nobody.
		n := now.UnixNano()
		for k, e := range s.cache {
			if e.expires <= n {
				s.drop(k, e)
			}
		}
		s.sweepAt = time.Time{}
		if len(s.cache) > 0 {
			s.sweepAt = now.Add(sweepEvery)
		}
	}
	return s.take()
}

func (s *Speaker) drop(k cacheKey, e saEntry) {
	delete(s.cache, k)
	ks := s.byG[k.G]
	if i := slices.Index(ks, k); i >= 0 {
		ks[i] = ks[len(ks)-1]
		ks = ks[:len(ks)-1]
	}
	if len(ks) == 0 {
		delete(s.byG, k.G)
	} else {
		s.byG[k.G] = ks
	}
	if p := s.peers[e.peer.addr()]; p != nil {
		p.cached--
	}
}

// NextDeadline is the earliest time Advance has work.
func (s *Speaker) NextDeadline() time.Time {
	next := s.advAt
	early := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, p := range s.peers {
		switch p.state {
		case Connecting:
			early(p.retryAt)
		case Established:
			early(p.holdAt)
			early(p.kaAt)
		}
	}
	early(s.sweepAt)
	return next
}

// Sources lists the cached sources of g (for PIM when receivers appear
// at this RP: it joins toward each).
func (s *Speaker) Sources(g netip.Addr) []Active {
	var out []Active
	for _, k := range s.byG[to4(g)] {
		out = append(out, Active{SG: SG{S: k.S.addr(), G: k.G.addr()}, RP: k.RP.addr()})
	}
	slices.SortFunc(out, func(a, b Active) int { return cmp.Or(a.S.Compare(b.S), a.RP.Compare(b.RP)) })
	return out
}

// Cached says whether any RP's SA for (S,G) is cached.
func (s *Speaker) Cached(sg SG) bool {
	src := to4(sg.S)
	for _, k := range s.byG[to4(sg.G)] {
		if k.S == src {
			return true
		}
	}
	return false
}

// --- peer-RPF (RFC 3618 section 10.1.3) -----------------------------------

// rpfPeer picks the peer whose SAs originated by rp are accepted, and the
// rule that picked it. Only established peers count.
func (s *Speaker) rpfPeer(rp netip.Addr) (netip.Addr, string, bool) {
	up := func(a netip.Addr) bool { p := s.peers[a]; return p != nil && p.state == Established }
	// (i) the peer is the originating RP.
	if up(rp) {
		return rp, "i: the peer is the originating RP", true
	}
	route, haveRoute := s.routeTo(rp)
	if haveRoute && route.BGP != nil {
		b := route.BGP
		// (ii) the eBGP next hop toward the RP.
		if b.External && up(route.NextHop) {
			return route.NextHop, "ii: eBGP next hop toward the RP (" + route.Table + ")", true
		}
		if b.External && up(b.Peer) {
			return b.Peer, "ii: eBGP neighbour that advertised the route to the RP (" + route.Table + ")", true
		}
		// (iii) the iBGP neighbour that advertised the best path.
		if !b.External && up(b.Peer) {
			return b.Peer, "iii: iBGP neighbour that advertised the route to the RP (" + route.Table + ")", true
		}
		// (iv) the peer in the closest AS on the path; highest address.
		if len(b.ASPath) > 0 {
			var best netip.Addr
			for a, p := range s.peers {
				if p.state == Established && s.peerAS(p) == b.ASPath[0] && (!best.IsValid() || best.Less(a)) {
					best = a
				}
			}
			if best.IsValid() {
				return best, fmt.Sprintf("iv: peer in AS %d, the closest AS on the path to the RP", b.ASPath[0]), true
			}
		}
	}
	if haveRoute && route.BGP == nil {
		// (iii) with an IGP route: the peer is the next hop toward the
		// RP, or is reached through the same next hop (peers on
		// loopbacks).
		if route.NextHop.IsValid() && up(route.NextHop) {
			return route.NextHop, "iii: IGP next hop toward the RP (" + route.Protocol + ")", true
		}
		var best netip.Addr
		for a, p := range s.peers {
			if p.state != Established {
				continue
			}
			if pr, ok := s.routeTo(a); ok && pr.Iface == route.Iface && pr.NextHop == route.NextHop && (!best.IsValid() || best.Less(a)) {
				best = a
			}
		}
		if best.IsValid() {
			return best, "iii: reached through the IGP next hop toward the RP (" + route.Protocol + ")", true
		}
	}
	// (v) a static RPF peer.
	for _, st := range s.cfg.StaticRPF {
		if st.Prefix.Contains(rp) && up(st.Peer) {
			return st.Peer, "v: static RPF peer for " + st.Prefix.String(), true
		}
	}
	// (vi) a default peer, in configuration order.
	for _, pc := range s.cfg.Peers {
		if pc.Default && up(pc.Address) {
			return pc.Address, "vi: default peer", true
		}
	}
	// A router with one peer takes everything from it (a stub domain).
	if len(s.peers) == 1 {
		for a := range s.peers {
			if up(a) {
				return a, "the only peer", true
			}
		}
	}
	return netip.Addr{}, "", false
}

func (s *Speaker) routeTo(a netip.Addr) (Route, bool) {
	if s.routes == nil {
		return Route{}, false
	}
	return s.routes.RouteTo(a)
}

func (s *Speaker) peerAS(p *peer) uint32 { return p.cfg.AS }

func (s *Speaker) inMesh(p *peer) bool { return p.cfg.MeshGroup != "" }

// sameMesh says whether two peers are in one mesh group: an SA from one
// is not forwarded to the other (RFC 3618 section 10.2).
func (s *Speaker) sameMesh(a, b netip.Addr) bool {
	pa, pb := s.peers[a], s.peers[b]
	return pa != nil && pb != nil && pa.cfg.MeshGroup != "" && pa.cfg.MeshGroup == pb.cfg.MeshGroup
}

func (s *Speaker) isLocalAddr(a netip.Addr) bool {
	for _, p := range s.cfg.Peers {
		if p.Local == a {
			return true
		}
	}
	return false
}

func (s *Speaker) sortedPeers() []*peer {
	out := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *peer) int { return a.cfg.Address.Compare(b.cfg.Address) })
	return out
}

func (s *Speaker) sortedCache() func(yield func(cacheKey, saEntry) bool) {
	keys := make([]cacheKey, 0, len(s.cache))
	for k := range s.cache {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b cacheKey) int {
		return cmp.Or(cmp.Compare(string(a.RP[:]), string(b.RP[:])), cmp.Compare(string(a.G[:]), string(b.G[:])), cmp.Compare(string(a.S[:]), string(b.S[:])))
	})
	return func(yield func(cacheKey, saEntry) bool) {
		for _, k := range keys {
			if !yield(k, s.cache[k]) {
				return
			}
		}
	}
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// Reconfigure applies a new config as a diff: removed peers are closed,
// new ones started, and a peer whose session parameters (local address,
// password) changed is reset; other changes (mesh group, filters, limits)
// apply to the running session.
func (s *Speaker) Reconfigure(now time.Time, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	want := map[netip.Addr]PeerConfig{}
	for _, pc := range cfg.Peers {
		want[pc.Address] = pc
	}
	for a, p := range s.peers {
		pc, ok := want[a]
		if !ok || pc.Local != p.cfg.Local || pc.Password != p.cfg.Password {
			if p.state == Established {
				s.res.Closes = append(s.res.Closes, Close{Peer: a, Reason: "peer removed or its session changed by reload"})
			}
			delete(s.peers, a)
			if ok {
				continue // re-added below
			}
			s.res.Events = append(s.res.Events, Event{Peer: a, State: Disabled, Reason: "removed by reload"})
			continue
		}
		p.cfg = pc
	}
	s.cfg = cfg
	// What removed or reset peers taught goes with them.
	for k, e := range s.cache {
		if s.peers[e.peer.addr()] == nil {
			s.drop(k, e)
		}
	}
	for _, pc := range cfg.Peers {
		if s.peers[pc.Address] == nil {
			s.addPeer(now, pc)
		}
	}
	return s.take(), nil
}
