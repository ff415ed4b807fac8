package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/msdp"
	"overcast/internal/pim"
)

// MSDPPort is MSDP's TCP port (RFC 3618 section 5).
const MSDPPort = 639

// msdpComp runs MSDP between this RP and its peers: the core's bytes go
// over Env.Streams; sources registered to this RP are originated as SAs;
// SAs learned for groups with receivers here make PIM join toward the
// source.
type msdpComp struct {
	d       *Daemon
	s       *msdp.Speaker
	streams dataplane.Streams
	conns   map[dataplane.StreamID]netip.Addr // established sessions: id -> peer
	byPeer  map[netip.Addr]dataplane.StreamID
	dialing map[dataplane.StreamID]netip.Addr
	listens map[netip.Addr]map[netip.Addr]string // local address -> MD5 keys by peer

	// originated is the set last handed to the speaker; recheckAt is when
	// the whole set is next rebuilt from PIM (between rebuilds, changed
	// (S,G)s are checked one by one).
	originated map[msdp.SG]bool
	dataSent   map[msdp.SG]int // data packets sent in SAs per new source
	changed    map[pim.SG]bool
	groups     map[netip.Addr]bool // groups whose (*,G) changed at this RP
	recheckAt  time.Time
	refreshAt  time.Time
}

// recheckEvery bounds how late an originated SA is withdrawn after the
// source stops, and how often cached sources are offered to PIM again.
const recheckEvery = 10 * time.Second

// msdpConfig builds the core's config from the file's.
func msdpConfig(c *config.Config) (msdp.Config, error) {
	m := c.MSDP
	out := msdp.Config{SALimit: m.SALimit, Keepalive: m.Keepalive, HoldTime: m.HoldTime, ConnectRetry: m.ConnectRetry,
		Policies: map[string]msdp.Policy{}}
	src, _ := netip.ParseAddr(m.Source)
	out.Originator = src
	if m.OriginatorID != "" {
		out.Originator, _ = netip.ParseAddr(m.OriginatorID)
	}
	for name, rules := range m.Policies {
		var p msdp.Policy
		for _, r := range rules {
			x := msdp.Rule{Action: msdp.Deny}
			if r.Action == "permit" {
				x.Action = msdp.Permit
			}
			x.Source, _ = prefixOrNone(r.Source)
			x.Group, _ = prefixOrNone(r.Group)
			x.RP, _ = prefixOrNone(r.RP)
			p = append(p, x)
		}
		out.Policies[name] = p
	}
	for _, p := range m.Peers {
		pc := msdp.PeerConfig{MeshGroup: p.MeshGroup, Password: p.Password, FilterIn: p.SAFilterIn, FilterOut: p.SAFilterOut,
			SALimit: p.SALimit, Default: p.Default, AS: p.RemoteAS}
		pc.Address, _ = netip.ParseAddr(p.Address)
		pc.Local = src
		if p.Source != "" {
			pc.Local, _ = netip.ParseAddr(p.Source)
		}
		if !out.Originator.IsValid() {
			out.Originator = pc.Local
		}
		out.Peers = append(out.Peers, pc)
	}
	for _, r := range m.RPFPeers {
		pf, _ := config.ParsePrefixOrAddr(r.RP)
		peer, _ := netip.ParseAddr(r.Peer)
		out.StaticRPF = append(out.StaticRPF, msdp.StaticRPF{Prefix: pf, Peer: peer})
	}
	return out, out.Validate()
}

func prefixOrNone(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	return config.ParsePrefixOrAddr(s)
}

// routesAdapter answers the core's peer-RPF lookups from the daemon's
// routing (unicast today; MBGP ahead of it when it runs).
type routesAdapter struct{ d *Daemon }

func (r routesAdapter) RouteTo(a netip.Addr) (msdp.Route, bool) {
	if m := r.d.mbgp; m != nil {
		if rt, ok := m.s.Lookup(a); ok && !rt.Local {
			out := msdp.Route{Table: "mbgp", Protocol: "bgp", Prefix: rt.Prefix, NextHop: rt.NextHop,
				BGP: &msdp.BGPPath{Peer: rt.Peer, PeerAS: rt.PeerAS, External: rt.External, ASPath: rt.ASPath}}
			if x, ok := (rpfTables{r.d}).resolve(rt); ok {
				out.Iface = x.Iface
			}
			return out, true
		}
	}
	x, ok := r.d.env.Routing.Lookup(a)
	if !ok {
		return msdp.Route{}, false
	}
	return msdp.Route{Table: "unicast", Protocol: x.Protocol, NextHop: x.Neighbor, Iface: x.Iface}, true
}

func newMSDP(d *Daemon, now time.Time) (*msdpComp, error) {
	if d.env.Streams == nil {
		return nil, errors.New("msdp: this daemon has no TCP streams to carry sessions")
	}
	cfg, err := msdpConfig(d.cfg)
	if err != nil {
		return nil, d.cfg.Errorf(d.cfg.Line("msdp"), "%v", err)
	}
	s, err := msdp.New(cfg, routesAdapter{d})
	if err != nil {
		return nil, err
	}
	m := &msdpComp{d: d, s: s, streams: d.env.Streams(d.streamSink()), conns: map[dataplane.StreamID]netip.Addr{},
		byPeer: map[netip.Addr]dataplane.StreamID{}, dialing: map[dataplane.StreamID]netip.Addr{},
		originated: map[msdp.SG]bool{}, dataSent: map[msdp.SG]int{}, changed: map[pim.SG]bool{}, groups: map[netip.Addr]bool{}}
	if err := m.listen(cfg); err != nil {
		return nil, err
	}
	m.recheckAt, m.refreshAt = now.Add(recheckEvery), now.Add(recheckEvery)
	m.apply(now, s.Start(now))
	d.log.Info("msdp started", "originator", cfg.Originator, "peers", len(cfg.Peers))
	return m, nil
}

// listen opens the MSDP port on every local address a peer connects to,
// with the MD5 keys of the peers on it.
func (m *msdpComp) listen(cfg msdp.Config) error {
	want := map[netip.Addr]map[netip.Addr]string{}
	for _, p := range cfg.Peers {
		if want[p.Local] == nil {
			want[p.Local] = map[netip.Addr]string{}
		}
		if p.Password != "" {
			want[p.Local][p.Address] = p.Password
		}
	}
	for local, keys := range want {
		if err := m.streams.Listen(netip.AddrPortFrom(local, MSDPPort), keys); err != nil {
			return fmt.Errorf("msdp: listen on %s port %d: %w (is the address configured on this router, and is another MSDP speaker running?)", local, MSDPPort, err)
		}
	}
	m.listens = want
	return nil
}

func (m *msdpComp) name() string                          { return "msdp" }
func (m *msdpComp) ifaceUp(x *iface, now time.Time) error { return nil }
func (m *msdpComp) ifaceDown(x *iface, now time.Time)     {}

func (m *msdpComp) nextDeadline() time.Time {
	next := m.s.NextDeadline()
	for _, t := range []time.Time{m.recheckAt, m.refreshAt} {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

func (m *msdpComp) advance(now time.Time) {
	m.apply(now, m.s.Advance(now))
	if !m.recheckAt.After(now) {
		m.recheckAt = now.Add(recheckEvery)
		m.originateAll(now)
	}
	if !m.refreshAt.After(now) {
		// Cached sources of groups with receivers keep PIM's (S,G)
		// keepalive running while their SAs do.
		m.refreshAt = now.Add(recheckEvery)
		if p := m.d.pim; p != nil {
			for _, g := range p.r.GroupsWithReceivers() {
				for _, a := range m.s.Sources(g) {
					m.offer(now, a.S, a.G)
				}
			}
		}
	}
}

// originateAll rebuilds the originated set from PIM.
func (m *msdpComp) originateAll(now time.Time) {
	p := m.d.pim
	if p == nil {
		return
	}
	var sgs []msdp.SG
	next := map[msdp.SG]bool{}
	for _, k := range p.r.MSDPCandidates(now) {
		sg := msdp.SG{S: k.S, G: k.G}
		sgs = append(sgs, sg)
		next[sg] = true
	}
	slices.SortFunc(sgs, func(a, b msdp.SG) int {
		if c := a.G.Compare(b.G); c != 0 {
			return c
		}
		return a.S.Compare(b.S)
	})
	m.originated = next
	for sg := range m.dataSent {
		if !next[sg] {
			delete(m.dataSent, sg)
		}
	}
	m.apply(now, m.s.Originate(now, sgs))
}

// pimChanged hears of PIM entries that changed in a burst.
func (m *msdpComp) pimChanged(keys []pim.SG) {
	for _, k := range keys {
		if k.S.IsValid() {
			m.changed[k] = true
		} else {
			m.groups[k.G] = true
		}
	}
}

// endBurst originates SAs for sources that became candidates in the
// burst, and offers cached sources to PIM for groups that gained
// receivers.
func (m *msdpComp) endBurst(now time.Time) {
	p := m.d.pim
	if p == nil || (len(m.changed) == 0 && len(m.groups) == 0) {
		return
	}
	fresh := false
	for k := range m.changed {
		if !m.originated[msdp.SG{S: k.S, G: k.G}] && p.r.MSDPCandidate(now, k.S, k.G) {
			fresh = true
		}
	}
	clear(m.changed)
	if fresh {
		m.originateAll(now)
	}
	for g := range m.groups {
		if !p.r.HasReceivers(g) {
			continue
		}
		for _, a := range m.s.Sources(g) {
			m.offer(now, a.S, a.G)
		}
	}
	clear(m.groups)
}

// offer hands PIM a source an SA named: it joins when the group has
// receivers here.
func (m *msdpComp) offer(now time.Time, s, g netip.Addr) bool {
	p := m.d.pim
	if p == nil {
		return false
	}
	res, ok := p.r.SourceActive(now, s, g)
	if ok {
		p.apply(now, res)
	}
	return ok
}

// apply carries out what the core asked.
func (m *msdpComp) apply(now time.Time, r msdp.Result) {
	for _, e := range r.Events {
		if e.State == msdp.Established {
			m.d.log.Info("msdp peer up", "peer", e.Peer)
		} else if e.Reason != "" {
			m.d.log.Info("msdp peer "+e.State.String(), "peer", e.Peer, "reason", e.Reason)
		} else {
			m.d.log.Debug("msdp peer "+e.State.String(), "peer", e.Peer)
		}
	}
	for _, c := range r.Closes {
		if id, ok := m.byPeer[c.Peer]; ok {
			m.streams.Close(id)
			delete(m.byPeer, c.Peer)
			delete(m.conns, id)
			m.d.log.Warn("msdp session closed", "peer", c.Peer, "reason", c.Reason)
		}
	}
	for _, dl := range r.Dials {
		for id, p := range m.dialing {
			if p == dl.Peer {
				m.streams.Close(id) // a dial still pending from the last retry
				delete(m.dialing, id)
			}
		}
		id := m.streams.Dial(dl.Local, netip.AddrPortFrom(dl.Peer, MSDPPort), dl.Password)
		m.dialing[id] = dl.Peer
	}
	for _, o := range r.Sends {
		id, ok := m.byPeer[o.Peer]
		if !ok {
			continue
		}
		if err := m.streams.Write(id, o.Bytes); err != nil {
			m.streams.Close(id)
			delete(m.byPeer, o.Peer)
			delete(m.conns, id)
			m.apply(now, m.s.Closed(now, o.Peer, "write: "+err.Error()))
			return
		}
	}
	for _, a := range r.Learned {
		m.d.log.Debug("msdp sa learned", "source", a.S, "group", a.G, "rp", a.RP, "data", len(a.Data))
		if m.offer(now, a.S, a.G) && len(a.Data) > 0 {
			m.deliver(a)
		}
	}
}

// deliver sends the data packet an SA carried to this RP's receivers of
// its group: out of the (S,G)'s outgoing interfaces, TTL decremented, as
// if forwarded (RFC 3618 section 3). The packet is checked to be the
// SA's (S,G) first.
func (m *msdpComp) deliver(a msdp.Active) bool {
	inj, ok := m.d.env.Forwarder.(dataplane.Injector)
	p := m.d.pim
	if !ok || p == nil {
		return false
	}
	pkt := a.Data
	if len(pkt) < 20 || pkt[0]>>4 != 4 || int(pkt[0]&15)*4 > len(pkt) || pkt[8] <= 1 ||
		netip.AddrFrom4([4]byte(pkt[12:16])) != a.S || netip.AddrFrom4([4]byte(pkt[16:20])) != a.G {
		return false
	}
	iif, oifs, ok := p.r.Route(a.S, a.G)
	if !ok || iif == "" || iif == pim.RegisterVIF {
		return false // no path toward the source: this RP did not join it
	}
	if c, err := m.d.env.Forwarder.SGCount(dataplane.SG{Source: a.S, Group: a.G}); err == nil && c.Packets > 0 {
		return false // the stream already flows here: this copy would be a duplicate
	}
	out := append([]byte(nil), pkt...)
	out[8]-- // TTL
	hl := int(out[0]&15) * 4
	out[10], out[11] = 0, 0
	var sum uint32
	for i := 0; i+1 < hl; i += 2 {
		sum += uint32(out[i])<<8 | uint32(out[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	out[10], out[11] = byte(^sum>>8), byte(^sum)
	sent := false
	for _, o := range oifs {
		if o == iif || o == pim.RegisterVIF || m.d.ifs[o] == nil {
			continue
		}
		if err := inj.Inject(o, out); err != nil {
			m.d.log.Debug("msdp sa data", "interface", o, "err", err)
			continue
		}
		sent = true
	}
	return sent
}

// dataSAs bounds how many of a new source's first packets ride in SAs.
const dataSAs = 16

// originateData sends a data packet of a source registering to this RP
// inside an SA, while nothing here forwards the source yet (no outgoing
// interface for its Registers): the first SA carries the first packet,
// and the packets that follow until another domain's join arrives ride
// in SAs too, so that domain's receivers lose none of them (RFC 3618
// section 3 lets an RP carry data in SAs; FRR ignores it). At most
// dataSAs per source.
func (m *msdpComp) originateData(now time.Time, s, g netip.Addr, pkt []byte) {
	sg := msdp.SG{S: s, G: g}
	p := m.d.pim
	if m.dataSent[sg] >= dataSAs || !p.r.MSDPCandidate(now, s, g) {
		return
	}
	// Once the forwarder holds a route sending the Registers' packets
	// somewhere, they are forwarded: no more data in SAs. (Until it holds
	// it, both may carry a packet; the receiving RP drops the SA's copy
	// once its own route has forwarded anything.)
	if e, ok := m.d.rib.Get(dataplane.SG{Source: s, Group: g}); ok {
		if r := e.Route(); len(r.OIFs) > 0 && m.d.rec.Holds(r) {
			m.dataSent[sg] = dataSAs
			return
		}
	}
	m.dataSent[sg]++
	m.originated[sg] = true
	m.apply(now, m.s.OriginateData(now, sg, pkt))
}

// --- Stream events ---------------------------------------------------------

func (m *msdpComp) streamUp(now time.Time, id dataplane.StreamID, local, remote netip.AddrPort, inbound bool) {
	peer := remote.Addr()
	if !inbound {
		peer = m.dialing[id]
		delete(m.dialing, id)
		if !peer.IsValid() {
			m.streams.Close(id) // a dial we gave up on
			return
		}
		m.conns[id], m.byPeer[peer] = peer, id
		m.apply(now, m.s.Connected(now, peer))
		return
	}
	ok, why, res := m.s.Accept(now, peer, local.Addr())
	if !ok {
		m.streams.Close(id)
		m.d.log.Info("msdp connection refused", "from", remote, "reason", why)
		m.apply(now, res)
		return
	}
	m.conns[id], m.byPeer[peer] = peer, id
	m.apply(now, res)
}

func (m *msdpComp) streamFailed(now time.Time, id dataplane.StreamID, err error) {
	peer, ok := m.dialing[id]
	if !ok {
		return
	}
	delete(m.dialing, id)
	m.d.log.Debug("msdp connect failed", "peer", peer, "err", err)
	m.apply(now, m.s.DialFailed(now, peer, err))
}

func (m *msdpComp) streamData(now time.Time, id dataplane.StreamID, b []byte) {
	peer, ok := m.conns[id]
	if !ok {
		return
	}
	m.apply(now, m.s.Received(now, peer, b))
}

func (m *msdpComp) streamDown(now time.Time, id dataplane.StreamID, err error) {
	peer, ok := m.conns[id]
	if !ok {
		return
	}
	delete(m.conns, id)
	if m.byPeer[peer] == id {
		delete(m.byPeer, peer)
	}
	reason := "closed by the peer"
	if err != nil {
		reason = err.Error()
	}
	m.apply(now, m.s.Closed(now, peer, reason))
}

// --- Reload ----------------------------------------------------------------

func (m *msdpComp) checkReload(next *config.Config) error {
	if next.MSDP == nil {
		return next.Errorf(next.Line("pim"), "MSDP is on in the running configuration and off in this one: turning it off needs a restart, or keep the msdp: section (with no peers)")
	}
	if _, err := msdpConfig(next); err != nil {
		return next.Errorf(next.Line("msdp"), "%v", err)
	}
	return nil
}

func (m *msdpComp) reload(next *config.Config, now time.Time) {
	cfg, _ := msdpConfig(next)
	if err := m.listen(cfg); err != nil {
		m.d.log.Warn("msdp reload", "err", err)
	}
	res, err := m.s.Reconfigure(now, cfg)
	if err != nil {
		m.d.log.Warn("msdp reload", "err", err)
		return
	}
	m.apply(now, res)
}

// --- Views -----------------------------------------------------------------

func (m *msdpComp) views(add func(string, viewFunc)) {
	add(api.PathMSDPPeer, m.peerView)
	add(api.PathMSDPSACache, m.saView)
	add(api.PathMSDPRPFPeer, m.rpfView)
}

func (m *msdpComp) peerView(now time.Time, arg string) (any, error) {
	var want netip.Addr
	if arg != "" {
		a, err := netip.ParseAddr(arg)
		if err != nil {
			return nil, api.BadRequest{Err: fmt.Errorf("%q is not an IPv4 address: show msdp peer [ADDR]", arg)}
		}
		want = a
	}
	out := []api.MSDPPeer{}
	for _, p := range m.s.Peers() {
		if want.IsValid() && p.Config.Address != want {
			continue
		}
		st := p.Stats
		role := "listens"
		if p.Active {
			role = "connects"
		}
		row := api.MSDPPeer{Address: p.Config.Address.String(), Local: p.Config.Local.String(), State: p.State.String(), Role: role,
			Uptime: api.Duration(now.Sub(p.Since)), Holdtime: until(p.HoldAt, now), Retry: until(p.RetryAt, now), LastReset: p.Reason,
			MeshGroup: p.Config.MeshGroup, MD5: p.Config.Password != "", FilterIn: p.Config.FilterIn, FilterOut: p.Config.FilterOut,
			SALimit: p.Config.SALimit, Default: p.Config.Default, RemoteAS: p.Config.AS, SALearned: p.Cached,
			SAIn: st.SAIn, SAOut: st.SAOut, EntriesIn: st.SAEntriesIn, EntriesOut: st.SAEntriesOut, RequestsIn: st.RequestsIn,
			ResponsesIn: st.ResponsesIn, KeepalivesIn: st.KeepalivesIn, KeepalivesOut: st.KeepalivesOut, DataIn: st.DataIn,
			RPFFailures: st.RPFFailures, FilteredIn: st.FilteredIn, FilteredOut: st.FilteredOut, LimitDrops: st.LimitDrops,
			OwnSAs: st.OwnSAs, Unknown: st.Unknown, Malformed: st.Malformed, Resets: st.Resets, Refused: st.Refused}
		if a, ok := m.streams.(interface{ AuthFailures(netip.Addr) uint64 }); ok {
			row.AuthFailures = a.AuthFailures(p.Config.Address)
		}
		out = append(out, row)
	}
	if want.IsValid() && len(out) == 0 {
		return nil, api.BadRequest{Err: fmt.Errorf("%s is not an MSDP peer of this router", want)}
	}
	return out, nil
}

// saView lists the SA cache; ADDR selects a group or a source.
func (m *msdpComp) saView(now time.Time, arg string) (any, error) {
	var want netip.Addr
	if arg != "" {
		a, err := netip.ParseAddr(arg)
		if err != nil {
			return nil, api.BadRequest{Err: fmt.Errorf("%q is not an IPv4 address: show msdp sa-cache [GROUP|SOURCE]", arg)}
		}
		want = a
	}
	out := []api.MSDPSA{}
	for _, v := range m.s.Cache() {
		if want.IsValid() && v.G != want && v.S != want {
			continue
		}
		row := api.MSDPSA{Source: v.S.String(), Group: v.G.String(), RP: v.RP.String(), Local: v.Local,
			Uptime: api.Duration(now.Sub(v.Created)), Expires: until(v.Expires, now)}
		if mb := m.d.mbgp; mb != nil && !v.Local {
			// Cisco's BGP/AS: the origin AS of the MBGP route to the RP.
			if rt, ok := mb.s.Lookup(v.RP); ok && len(rt.ASPath) > 0 {
				row.AS = rt.ASPath[len(rt.ASPath)-1]
			}
		}
		if !v.Local {
			row.Peer = v.Peer.String()
			if p := m.d.pim; p != nil {
				row.Joined = p.r.HasReceivers(v.G)
			}
		}
		out = append(out, row)
	}
	return out, nil
}

func (m *msdpComp) rpfView(now time.Time, arg string) (any, error) {
	a, err := netip.ParseAddr(arg)
	if err != nil || !a.Is4() {
		return nil, api.BadRequest{Err: fmt.Errorf("%q is not an IPv4 address: show msdp rpf-peer RP-ADDRESS", arg)}
	}
	v := m.s.RPFPeer(a)
	out := api.MSDPRPF{RP: a.String(), Rule: v.Rule, Reason: v.Reason}
	if v.Peer.IsValid() {
		out.Peer = v.Peer.String()
	}
	if v.Route != nil {
		out.Table, out.Protocol, out.Iface = v.Route.Table, v.Route.Protocol, v.Route.Iface
		if v.Route.NextHop.IsValid() {
			out.NextHop = v.Route.NextHop.String()
		} else {
			out.NextHop = "connected"
		}
	}
	return out, nil
}
