package config

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Overlay is multicast between nodes over a fabric that carries only
// unicast UDP (docs/OVERLAY.md): this node's underlay address, the port,
// the key every control message is signed with, and the peers.
type Overlay struct {
	Address       string        `yaml:"address"`        // this node's underlay address (required)
	Port          int           `yaml:"port"`           // UDP port, default 6790
	Key           string        `yaml:"key"`            // the overlay key (or key-file)
	KeyFile       string        `yaml:"key-file"`       // a file holding the key
	Interface     string        `yaml:"interface"`      // the overlay device, default ovl0
	MTU           int           `yaml:"mtu"`            // the device's MTU, default 1500 minus the overlay's 32 octets
	HelloInterval time.Duration `yaml:"hello-interval"` // default 1s
	HoldTime      time.Duration `yaml:"hold-time"`      // default 3.5 hello intervals
	LocalRoute    *bool         `yaml:"local-route"`    // route 224.0.0.0/4 into the device for this host's own senders; default true
	Peers         []string      `yaml:"peers"`          // ADDR or ADDR:PORT
	Etcd          *OverlayEtcd  `yaml:"etcd"`           // find peers through etcd
	IGMP          IGMP          `yaml:"igmp"`           // IGMP on the device, for this host's own receivers (default version 3)

	KeyBytes []byte           `yaml:"-"` // the key, from key or key-file
	Local    netip.AddrPort   `yaml:"-"`
	PeerAddr []netip.AddrPort `yaml:"-"` // the peers parsed (this node itself left out)
}

// OverlayEtcd finds peers through etcd: every node registers itself under
// Prefix with a lease of TTL and watches the prefix.
type OverlayEtcd struct {
	Endpoints []string      `yaml:"endpoints"`
	Prefix    string        `yaml:"prefix"` // default /overcast/overlay/
	TTL       time.Duration `yaml:"ttl"`    // default 5s
}

// Overlay defaults.
const (
	DefaultOverlayPort      = 6790
	DefaultOverlayInterface = "ovl0"
	DefaultOverlayMTU       = 1500 - 32
	DefaultEtcdPrefix       = "/overcast/overlay/"
	minOverlayKey           = 16
)

// OverlayLocalRoute says whether the daemon routes 224.0.0.0/4 into the
// overlay device.
func (o *Overlay) OverlayLocalRoute() bool { return o.LocalRoute == nil || *o.LocalRoute }

// ParsePeer reads ADDR or ADDR:PORT (the overlay's default port).
func ParsePeer(s string, port int) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Is4() && ap.Port() != 0 {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.IsMulticast() || a.IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IPv4 unicast address or ADDR:PORT", s)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

func checkOverlay(c *Config, at func(...any) int, bad func(int, string, ...any) error) error {
	o := c.Overlay
	if o == nil {
		return nil
	}
	a, err := netip.ParseAddr(o.Address)
	if err != nil || !a.Is4() || a.IsMulticast() || a.IsUnspecified() {
		return bad(at("overlay", "address"), "overlay address %q: want this node's IPv4 underlay address (the one peers send to)", o.Address)
	}
	if o.Port == 0 {
		o.Port = DefaultOverlayPort
	}
	if o.Port < 1 || o.Port > 65535 {
		return bad(at("overlay", "port"), "overlay port %d: want 1..65535", o.Port)
	}
	o.Local = netip.AddrPortFrom(a, uint16(o.Port))
	switch {
	case o.Key != "" && o.KeyFile != "":
		return bad(at("overlay", "key-file"), "overlay key and key-file both given: keep one")
	case o.KeyFile != "":
		b, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return bad(at("overlay", "key-file"), "overlay key-file: %v (create one: head -c 32 /dev/urandom | base64 > %s)", err, o.KeyFile)
		}
		o.KeyBytes = []byte(strings.TrimSpace(string(b)))
	default:
		o.KeyBytes = []byte(o.Key)
	}
	if len(o.KeyBytes) < minOverlayKey {
		return bad(at("overlay"), "overlay key of %d bytes: want at least %d, the same on every node (make one: head -c 32 /dev/urandom | base64)", len(o.KeyBytes), minOverlayKey)
	}
	if o.Interface == "" {
		o.Interface = DefaultOverlayInterface
	}
	if len(o.Interface) > 15 {
		return bad(at("overlay", "interface"), "overlay interface name %q is longer than 15 characters", o.Interface)
	}
	if o.MTU == 0 {
		o.MTU = DefaultOverlayMTU
	}
	if o.MTU < 576 || o.MTU > 9000-32 {
		return bad(at("overlay", "mtu"), "overlay mtu %d: want 576..8968 (the underlay's MTU minus 32)", o.MTU)
	}
	if o.HelloInterval == 0 {
		o.HelloInterval = time.Second
	}
	if o.HelloInterval < 100*time.Millisecond || o.HelloInterval > time.Minute {
		return bad(at("overlay", "hello-interval"), "overlay hello-interval %v: want 100ms..1m", o.HelloInterval)
	}
	if o.HoldTime == 0 {
		o.HoldTime = o.HelloInterval * 7 / 2
	}
	if o.HoldTime <= o.HelloInterval || o.HoldTime > 10*time.Minute {
		return bad(at("overlay", "hold-time"), "overlay hold-time %v: want more than hello-interval %v (3.5 times is the default)", o.HoldTime, o.HelloInterval)
	}
	seen := map[netip.AddrPort]int{}
	for i, s := range o.Peers {
		p, err := ParsePeer(s, o.Port)
		if err != nil {
			return bad(at("overlay", "peers", i), "overlay peer %v", err)
		}
		if p == o.Local {
			continue // one peer list for every node: a node skips itself
		}
		if prev, dup := seen[p]; dup {
			return bad(at("overlay", "peers", i), "overlay peer %s listed twice (first on line %d)", p, prev)
		}
		seen[p] = at("overlay", "peers", i)
		o.PeerAddr = append(o.PeerAddr, p)
	}
	if e := o.Etcd; e != nil {
		if len(e.Endpoints) == 0 {
			return bad(at("overlay", "etcd"), "overlay etcd: list the endpoints (http://HOST:2379)")
		}
		if e.Prefix == "" {
			e.Prefix = DefaultEtcdPrefix
		}
		if e.TTL == 0 {
			e.TTL = 5 * time.Second
		}
		if e.TTL < 2*time.Second {
			return bad(at("overlay", "etcd", "ttl"), "overlay etcd ttl %v: want 2s or more (etcd leases count whole seconds)", e.TTL)
		}
	}
	g := o.IGMP
	if g.Version == 0 {
		o.IGMP.Version = 3
	}
	for i, ic := range c.Interfaces {
		if ic.Name == o.Interface {
			return bad(at("interfaces", i, "name"), "interface %q is the overlay's own device: leave it out of interfaces (set overlay interface to rename it)", ic.Name)
		}
	}
	c.Interfaces = append(c.Interfaces, Interface{Name: o.Interface, IGMP: o.IGMP, Overlay: true})
	return nil
}
