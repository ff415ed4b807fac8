package daemon

import (
	"io"
	"net/netip"
	"strings"
	"time"

	"overcast/internal/config"
	"overcast/internal/overlay"
)

// peerStore keeps the overlay's Store-origin peers equal to the nodes a
// distributed store lists (Env.PeerStore: etcd, a lease per node). A node
// whose lease expires leaves the list, and so the peer set, everywhere.
type peerStore struct {
	d         *Daemon
	closer    io.Closer
	endpoints string
	state     string
	peers     map[netip.AddrPort]bool
}

func newPeerStore(d *Daemon, o *config.Overlay) *peerStore {
	s := &peerStore{d: d, endpoints: strings.Join(o.Etcd.Endpoints, ","), state: "connecting", peers: map[netip.AddrPort]bool{}}
	update := func(peers []netip.AddrPort, state string) {
		d.post(func() { s.update(time.Now(), peers, state) })
	}
	if !d.loop.live && d.env.Now != nil {
		update = func(peers []netip.AddrPort, state string) { s.update(d.env.Now(), peers, state) }
	}
	c, err := d.env.PeerStore(PeerStoreConfig{Endpoints: o.Etcd.Endpoints, Prefix: o.Etcd.Prefix, TTL: o.Etcd.TTL, Self: o.Local}, update)
	if err != nil {
		s.state = "error: " + err.Error()
		d.log.Error("overlay peer store", "endpoints", s.endpoints, "err", err)
		return s
	}
	s.closer = c
	return s
}

// update makes the Store-origin peers the nodes listed (a nil list with a
// state only reports the state: the last list stays while the store is
// unreachable, so an etcd outage does not take the overlay down).
func (s *peerStore) update(now time.Time, peers []netip.AddrPort, state string) {
	if s.d.ovl == nil {
		return
	}
	if state != s.state {
		s.d.log.Info("overlay peer store", "endpoints", s.endpoints, "state", state)
		s.state = state
	}
	if peers == nil {
		return
	}
	next := map[netip.AddrPort]bool{}
	for _, p := range peers {
		next[p] = true
	}
	for p := range s.peers {
		if !next[p] {
			s.d.ovl.delPeer(now, p, overlay.Store)
		}
	}
	for p := range next {
		if !s.peers[p] {
			s.d.ovl.addPeer(now, p, overlay.Store)
		}
	}
	s.peers = next
	s.d.EndBurst(now)
}

func (s *peerStore) describe() (string, string) { return "etcd " + s.endpoints, s.state }

func (s *peerStore) stop() {
	if s.closer != nil {
		s.closer.Close()
	}
}
