package msdp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// PeerView is one peer for `show msdp peer`.
type PeerView struct {
	Config  PeerConfig
	State   State
	Since   time.Time
	Active  bool   // this side connects
	Reason  string // why the last session ended
	Cached  int    // SAs in the cache learned from it
	Stats   PeerStats
	HoldAt  time.Time
	RetryAt time.Time
}

// Peers lists the peers by address.
func (s *Speaker) Peers() []PeerView {
	var out []PeerView
	for _, p := range s.sortedPeers() {
		v := PeerView{Config: p.cfg, State: p.state, Since: p.since, Active: p.active, Reason: p.reason, Cached: p.cached, Stats: p.stats}
		if p.state == Established {
			v.HoldAt = p.holdAt
		}
		if p.state == Connecting {
			v.RetryAt = p.retryAt
		}
		out = append(out, v)
	}
	return out
}

// SAView is one cached (or originated) SA for `show msdp sa-cache`.
type SAView struct {
	SG
	RP      netip.Addr
	Peer    netip.Addr // learned from; zero when originated here
	Local   bool
	Created time.Time
	Expires time.Time // zero for originated SAs
}

// Cache lists the SA cache and the originated SAs, by group then source.
func (s *Speaker) Cache() []SAView {
	out := make([]SAView, 0, len(s.cache)+len(s.local))
	for k, e := range s.cache {
		out = append(out, SAView{SG: SG{S: k.S.addr(), G: k.G.addr()}, RP: k.RP.addr(), Peer: e.peer.addr(),
			Created: time.Unix(0, e.created), Expires: time.Unix(0, e.expires)})
	}
	for sg, at := range s.local {
		out = append(out, SAView{SG: sg, RP: s.cfg.Originator, Local: true, Created: at})
	}
	slices.SortFunc(out, func(a, b SAView) int {
		return cmp.Or(a.G.Compare(b.G), a.S.Compare(b.S), a.RP.Compare(b.RP))
	})
	return out
}

// CacheLen is how many SAs are cached (not counting originated ones).
func (s *Speaker) CacheLen() int { return len(s.cache) }

// LimitDrops counts SA entries dropped over a limit, over all peers.
func (s *Speaker) LimitDrops() uint64 { return s.limitDrops }

// RPFView explains the peer-RPF decision for an originating RP.
type RPFView struct {
	RP     netip.Addr
	Peer   netip.Addr // zero: none
	Rule   string
	Route  *Route // the route toward the RP the rules looked at
	Reason string // when no peer: why
}

// RPFPeer says which peer SAs originated by rp are accepted from, and why.
func (s *Speaker) RPFPeer(rp netip.Addr) RPFView {
	v := RPFView{RP: rp}
	if r, ok := s.routeTo(rp); ok {
		v.Route = &r
	}
	if rp == s.cfg.Originator {
		v.Reason = "this router is the originator; its own SAs are dropped when they come back"
		return v
	}
	if p, rule, ok := s.rpfPeer(rp); ok {
		v.Peer, v.Rule = p, rule
		return v
	}
	established := 0
	for _, p := range s.peers {
		if p.state == Established {
			established++
		}
	}
	switch {
	case established == 0:
		v.Reason = "no MSDP peer is established"
	case v.Route == nil:
		v.Reason = fmt.Sprintf("no route toward %s, and no static RPF peer or default peer is established (add one, or a route)", rp)
	default:
		v.Reason = fmt.Sprintf("no established peer matches the route toward %s (next hop %s); peer with the router on that path, or configure a static RPF peer", rp, v.Route.NextHop)
	}
	return v
}
