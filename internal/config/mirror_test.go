package config

import (
	"strings"
	"testing"

	"overcast/internal/mirror"
)

const goodMirror = `mirror:
  services:
    - name: ids
      to: vxlan://192.0.2.10
      vni: 4242
      truncate: 128
      rate: 10000pps
    - name: local
      to: port:mon0
      mac: 02:00:00:00:00:01
      vlan: strip
  flows:
    - service: ids
      port: tap-vm1
      direction: both
      rules:
        - 10 accept dst 8.8.8.8
        - 20 accept sg 10.0.1.10,239.1.1.1
    - name: vm1-local
      service: local
      port: tap-vm1
      direction: in
`

func TestMirrorConfig(t *testing.T) {
	ports := func(n string) bool { return n == "tap-vm1" || n == "mon0" }
	c, err := Parse("m.yaml", []byte(goodMirror), ports)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Mirror.Set
	if len(s.Services) != 2 || len(s.Flows) != 2 {
		t.Fatalf("%+v", s)
	}
	ids := s.Services[0]
	if ids.Collector.String() != "192.0.2.10:4789" || ids.VNI != 4242 || ids.Truncate != 128 || ids.Rate.PPS != 10000 {
		t.Fatalf("ids: %+v", ids)
	}
	if l := s.Services[1]; l.Port != "mon0" || !l.StripVLAN || l.MAC != "02:00:00:00:00:01" {
		t.Fatalf("local: %+v", l)
	}
	if f := s.Flows[0]; f.Name != "ids:tap-vm1:both" || f.Direction != mirror.Both || len(f.Rules) != 2 {
		t.Fatalf("flow: %+v", f)
	}
	if s.Flows[1].Name != "vm1-local" || s.Flows[1].Direction != mirror.In {
		t.Fatalf("flow: %+v", s.Flows[1])
	}
}

func TestMirrorConfigErrors(t *testing.T) {
	ports := func(n string) bool { return n == "tap-vm1" || n == "mon0" }
	svc := "mirror:\n  services:\n    - name: ids\n      to: vxlan://192.0.2.10\n      vni: 7\n"
	for _, c := range []struct {
		yaml, line, want string
	}{
		{"mirror:\n  services:\n    - name: ids\n      to: gre://192.0.2.10\n", "m.yaml:3:", "want vxlan://COLLECTOR"},
		{"mirror:\n  services:\n    - name: ids\n      to: vxlan://192.0.2.10\n", "m.yaml:3:", "VNI 0"},
		{"mirror:\n  services:\n    - name: ids\n      to: port:nosuch\n", "m.yaml:4:", `no interface "nosuch"`},
		{svc + "      rate: quick\n", "m.yaml:3:", "rate \"quick\""},
		{svc + "      vlan: drop\n", "m.yaml:3:", "want keep or strip"},
		{svc + "    - name: ids\n      to: port:mon0\n", "m.yaml:6:", "defined twice (first on line 3)"},
		{svc + "  flows:\n    - service: ids\n      port: nosuch\n      direction: in\n", "m.yaml:8:", `no interface "nosuch"`},
		{svc + "  flows:\n    - service: other\n      port: tap-vm1\n      direction: in\n", "m.yaml:7:", `no service "other"`},
		{svc + "  flows:\n    - service: ids\n      port: tap-vm1\n      direction: up\n", "m.yaml:7:", `direction "up"`},
		{svc + "  flows:\n    - service: ids\n      port: tap-vm1\n      direction: in\n      rules: [\"accept dport 80\"]\n", "m.yaml:7:", "ports need proto"},
		{svc + "  flows:\n    - service: ids\n      port: tap-vm1\n      direction: in\n    - service: ids\n      port: tap-vm1\n      direction: in\n", "m.yaml:10:", "defined twice"},
		{"mirror:\n  services:\n    - name: loc\n      to: port:mon0\n  flows:\n    - service: loc\n      port: mon0\n      direction: in\n", "m.yaml:7:", "tapped again"},
	} {
		_, err := Parse("m.yaml", []byte(c.yaml), ports)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.line) {
			t.Errorf("%q:\n  %v\n  want %s ... %q", c.yaml, err, c.line, c.want)
		}
	}
	// A file with only a mirror section is a config (a host that taps and routes nothing).
	if _, err := Parse("m.yaml", []byte("mirror: {}\n"), ports); err != nil {
		t.Fatal(err)
	}
}
