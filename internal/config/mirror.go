package config

import (
	"fmt"

	"overcast/internal/mirror"
)

// Mirror is traffic mirroring (tap services and tap flows, after
// OpenStack Tap-as-a-Service): where copies go, and which packets of
// which ports are copied.
type Mirror struct {
	Services []MirrorService `yaml:"services"`
	Flows    []MirrorFlow    `yaml:"flows"`

	Set mirror.Set `yaml:"-"` // the sections parsed
}

// MirrorService is one tap service.
type MirrorService struct {
	Name     string `yaml:"name"`
	To       string `yaml:"to"`       // vxlan://COLLECTOR[:PORT] or port:IFNAME
	VNI      uint32 `yaml:"vni"`      // for vxlan://
	Truncate uint32 `yaml:"truncate"` // octets per copy; 0 whole
	Rate     string `yaml:"rate"`     // 10000pps, 100mbps; "" none
	VLAN     string `yaml:"vlan"`     // keep (default) or strip
	MAC      string `yaml:"mac"`      // the copies' destination MAC (the monitor's)
}

// MirrorFlow is one tap flow.
type MirrorFlow struct {
	Name      string   `yaml:"name"` // default SERVICE:PORT:DIRECTION
	Service   string   `yaml:"service"`
	Port      string   `yaml:"port"`
	Direction string   `yaml:"direction"` // in, out or both
	Rules     []string `yaml:"rules"`     // "[N] accept|reject [proto P] [src PFX] [dst PFX] [sport N[-M]] [dport N[-M]] [group G] [sg S,G]"
}

// Spec parses a service's fields (the CLI uses it too).
func (s MirrorService) Spec() (mirror.Service, error) {
	out := mirror.Service{Name: s.Name, VNI: s.VNI, Truncate: s.Truncate, MAC: s.MAC}
	var err error
	if out.Collector, out.Port, err = mirror.ParseTarget(s.To); err != nil {
		return out, err
	}
	if s.Rate != "" {
		if out.Rate, err = mirror.ParseRate(s.Rate); err != nil {
			return out, err
		}
	}
	switch s.VLAN {
	case "", "keep":
	case "strip":
		out.StripVLAN = true
	default:
		return out, fmt.Errorf("vlan %q: want keep or strip", s.VLAN)
	}
	return out, out.Check()
}

// Spec parses a flow's fields.
func (f MirrorFlow) Spec() (mirror.Flow, error) {
	d, err := mirror.ParseDirection(f.Direction)
	if err != nil {
		return mirror.Flow{}, fmt.Errorf("flow on %s: %v", f.Port, err)
	}
	out := mirror.Flow{Name: f.Name, Service: f.Service, Port: f.Port, Direction: d, Rules: f.Rules}
	if out.Name == "" {
		out.Name = mirror.FlowName(f.Service, f.Port, d)
	}
	return out, out.Check()
}

func checkMirror(c *Config, at func(...any) int, bad func(int, string, ...any) error, ifExists func(string) bool) error {
	m := c.Mirror
	if m == nil {
		return nil
	}
	m.Set = mirror.Set{Services: []mirror.Service{}, Flows: []mirror.Flow{}}
	svcLine := map[string]int{}
	for i, s := range m.Services {
		x, err := s.Spec()
		if err != nil {
			return bad(at("mirror", "services", i), "mirror service: %v", err)
		}
		if prev, dup := svcLine[x.Name]; dup {
			return bad(at("mirror", "services", i, "name"), "mirror service %s defined twice (first on line %d)", x.Name, prev)
		}
		if x.Port != "" && ifExists != nil && !ifExists(x.Port) {
			return bad(at("mirror", "services", i, "to"), "mirror service %s: no interface %q on this host (ip link shows them)", x.Name, x.Port)
		}
		m.Set.Services = append(m.Set.Services, x)
		svcLine[x.Name] = at("mirror", "services", i)
	}
	flowLine := map[string]int{}
	for i, f := range m.Flows {
		x, err := f.Spec()
		if err != nil {
			return bad(at("mirror", "flows", i), "mirror %v", err)
		}
		if prev, dup := flowLine[x.Name]; dup {
			return bad(at("mirror", "flows", i), "mirror flow %s defined twice (first on line %d); give one a name:", x.Name, prev)
		}
		if _, ok := svcLine[x.Service]; !ok {
			return bad(at("mirror", "flows", i, "service"), "mirror flow %s: no service %q under mirror: services", x.Name, x.Service)
		}
		if sv, _ := m.Set.Service(x.Service); sv.Port == x.Port {
			return bad(at("mirror", "flows", i, "port"), "mirror flow %s taps %s, where its service %s delivers: copies would be tapped again", x.Name, x.Port, sv.Name)
		}
		if ifExists != nil && !ifExists(x.Port) {
			return bad(at("mirror", "flows", i, "port"), "mirror flow %s: no interface %q on this host (ip link shows them)", x.Name, x.Port)
		}
		m.Set.Flows = append(m.Set.Flows, x)
		flowLine[x.Name] = at("mirror", "flows", i)
	}
	if err := m.Set.Check(); err != nil {
		return bad(at("mirror"), "mirror: %v", err)
	}
	return nil
}
