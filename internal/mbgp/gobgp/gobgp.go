// Package gobgp runs the daemon's MBGP speaker on GoBGP, embedded: one
// BGP server in the process, peering for the IPv4 multicast family only,
// its best paths mirrored into an mbgp.Table that RPF reads.
package gobgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"overcast/internal/mbgp"
)

// Speaker implements mbgp.Speaker.
type Speaker struct {
	*mbgp.Table
	log      *slog.Logger
	onChange func() // best paths changed: RPF must be re-checked

	mu     sync.Mutex
	s      *server.BgpServer
	cfg    mbgp.Config
	cancel context.CancelFunc
	since  map[netip.Addr]time.Time
}

// New returns a speaker that calls onChange (from its own goroutine)
// whenever best paths change.
func New(log *slog.Logger, onChange func()) *Speaker {
	return &Speaker{Table: mbgp.NewTable(), log: log, onChange: onChange, since: map[netip.Addr]time.Time{}}
}

var mcast = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_MULTICAST}

// Start implements mbgp.Speaker.
func (s *Speaker) Start(cfg mbgp.Config) error {
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	bs := server.NewBgpServer(server.LoggerOption(s.log.With("component", "bgp"), lvl))
	go bs.Serve()
	port := int32(179)
	if cfg.Port != 0 {
		port = int32(cfg.Port)
	}
	g := &api.Global{Asn: cfg.AS, RouterId: cfg.RouterID.String(), ListenPort: port}
	for _, a := range cfg.Listen {
		g.ListenAddresses = append(g.ListenAddresses, a.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := bs.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		cancel()
		bs.Stop()
		return fmt.Errorf("bgp: start (AS %d, router-id %s, port %d): %w", cfg.AS, cfg.RouterID, port, err)
	}
	s.mu.Lock()
	s.s, s.cancel = bs, cancel
	s.mu.Unlock()
	err := bs.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnBestPath: func(paths []*apiutil.Path, _ time.Time) { s.best(paths) },
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
			if ev.Type == apiutil.PEER_EVENT_STATE {
				s.peerState(ev, at)
			}
		},
	}, server.WatchBestPath(true), server.WatchPeer())
	if err != nil {
		s.Stop()
		return fmt.Errorf("bgp: watch: %w", err)
	}
	return s.apply(mbgp.Config{}, cfg)
}

func (s *Speaker) peerState(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	a := ev.Peer.Conf.NeighborAddress
	s.mu.Lock()
	s.since[a] = at
	s.mu.Unlock()
	s.log.Info("bgp neighbor state", "neighbor", a, "state", ev.Peer.State.SessionState.String())
}

// best mirrors GoBGP's best paths of the multicast family into the table.
func (s *Speaker) best(paths []*apiutil.Path) {
	changed := false
	for _, p := range paths {
		if p.Family != bgp.RF_IPv4_MC {
			continue
		}
		pfx, ok := prefixOf(p.Nlri)
		if !ok {
			continue
		}
		changed = true
		if p.Withdrawal {
			s.Table.Delete(pfx)
			continue
		}
		r := mbgp.Route{Prefix: pfx, Peer: p.PeerAddress, PeerAS: p.PeerASN, Age: time.Unix(p.Age, 0)}
		r.Local = !p.PeerAddress.IsValid() || p.PeerAddress.IsUnspecified()
		if r.Local {
			r.Peer = netip.Addr{}
		}
		for _, a := range p.Attrs {
			switch a := a.(type) {
			case *bgp.PathAttributeMpReachNLRI:
				r.NextHop = a.Nexthop
			case *bgp.PathAttributeNextHop:
				r.NextHop = a.Value
			case *bgp.PathAttributeAsPath:
				for _, seg := range a.Value {
					r.ASPath = append(r.ASPath, seg.GetAS()...)
				}
			case *bgp.PathAttributeMultiExitDisc:
				r.MED = a.Value
			}
		}
		s.mu.Lock()
		r.External = !r.Local && r.PeerAS != s.cfg.AS
		s.mu.Unlock()
		s.Table.Set(r)
	}
	if changed && s.onChange != nil {
		s.onChange()
	}
}

func prefixOf(n bgp.NLRI) (netip.Prefix, bool) {
	if p, ok := n.(*bgp.IPAddrPrefix); ok {
		return p.Prefix, true
	}
	return netip.Prefix{}, false
}

// Reconfigure implements mbgp.Speaker: neighbours and networks as a diff.
// A new AS or router ID needs a restart.
func (s *Speaker) Reconfigure(cfg mbgp.Config) error {
	s.mu.Lock()
	old := s.cfg
	s.mu.Unlock()
	if cfg.AS != old.AS || cfg.RouterID != old.RouterID {
		return errors.New("bgp: a new AS or router-id needs a restart")
	}
	return s.apply(old, cfg)
}

func (s *Speaker) apply(old, cfg mbgp.Config) error {
	s.mu.Lock()
	bs := s.s
	s.cfg = cfg
	s.mu.Unlock()
	ctx := context.Background()
	had := map[netip.Addr]mbgp.Neighbor{}
	for _, n := range old.Neighbors {
		had[n.Address] = n
	}
	want := map[netip.Addr]bool{}
	for _, n := range cfg.Neighbors {
		want[n.Address] = true
		if o, ok := had[n.Address]; ok && o.AS == n.AS && o.Local == n.Local && o.Password == n.Password && o.Multihop == n.Multihop {
			continue
		} else if ok {
			bs.DeletePeer(ctx, &api.DeletePeerRequest{Address: n.Address.String()})
		}
		p := &api.Peer{
			Conf:     &api.PeerConf{NeighborAddress: n.Address.String(), PeerAsn: n.AS, AuthPassword: n.Password},
			AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: mcast, Enabled: true}}},
			Timers:   &api.Timers{Config: &api.TimersConfig{ConnectRetry: 5, HoldTime: 90, KeepaliveInterval: 30}},
		}
		if n.Local.IsValid() {
			p.Transport = &api.Transport{LocalAddress: n.Local.String()}
		}
		if n.Multihop > 0 {
			p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.Multihop)}
		}
		if err := bs.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			return fmt.Errorf("bgp: neighbor %s: %w", n.Address, err)
		}
	}
	for a := range had {
		if !want[a] {
			bs.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()})
		}
	}
	oldNets := map[netip.Prefix]bool{}
	for _, p := range old.Networks {
		oldNets[p] = true
	}
	newNets := map[netip.Prefix]bool{}
	for _, p := range cfg.Networks {
		newNets[p] = true
		if !oldNets[p] {
			if _, err := bs.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{s.network(p, cfg)}}); err != nil {
				return fmt.Errorf("bgp: announce %s: %w", p, err)
			}
		}
	}
	for p := range oldNets {
		if !newNets[p] {
			bs.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{s.network(p, old)}})
		}
	}
	return nil
}

// network is a locally originated multicast route, next hop self (GoBGP
// puts the session's own address in place of 0.0.0.0 toward eBGP peers).
func (s *Speaker) network(p netip.Prefix, cfg mbgp.Config) *apiutil.Path {
	nlri, _ := bgp.NewIPAddrPrefix(p)
	nh := netip.IPv4Unspecified()
	mp, _ := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv4_MC, []bgp.PathNLRI{{NLRI: nlri}}, nh)
	return &apiutil.Path{Family: bgp.RF_IPv4_MC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), mp}}
}

// Neighbors implements mbgp.Speaker.
func (s *Speaker) Neighbors() []mbgp.Neighbor {
	s.mu.Lock()
	bs, cfg := s.s, s.cfg
	since := make(map[netip.Addr]time.Time, len(s.since))
	for k, v := range s.since {
		since[k] = v
	}
	s.mu.Unlock()
	state := map[string]*api.Peer{}
	if bs != nil {
		bs.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: false}, func(p *api.Peer) {
			state[p.Conf.NeighborAddress] = p
		})
	}
	var out []mbgp.Neighbor
	for _, n := range cfg.Neighbors {
		if p := state[n.Address.String()]; p != nil && p.State != nil {
			n.State = stateName(p.State.SessionState)
			for _, af := range p.AfiSafis {
				if af.State != nil && af.State.Family != nil && af.State.Family.Safi == api.Family_SAFI_MULTICAST {
					n.Received, n.Accepted = int(af.State.Received), int(af.State.Accepted)
				}
			}
		}
		n.Since = since[n.Address]
		out = append(out, n)
	}
	return out
}

func stateName(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return "Idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "Connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "Active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "OpenSent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "OpenConfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "Established"
	}
	return "Unknown"
}

// Stop implements mbgp.Speaker.
func (s *Speaker) Stop() {
	s.mu.Lock()
	bs, cancel := s.s, s.cancel
	s.s = nil
	s.mu.Unlock()
	if bs == nil {
		return
	}
	bs.StopBgp(context.Background(), &api.StopBgpRequest{})
	cancel()
	bs.Stop()
}
