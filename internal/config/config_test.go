package config

import (
	"strings"
	"testing"
	"time"
)

func exists(name string) bool { return name == "eth0" || name == "eth1" }

const good = `# a router between two LANs
api-socket: /tmp/oc.sock
interfaces:
  - name: eth0
  - name: eth1
    igmp:
      version: 2
      query-interval: 30s
      explicit-tracking: true
      static-groups: [239.1.1.1, 239.2.2.2]
`

func TestGood(t *testing.T) {
	c, err := Parse("overcast.yaml", []byte(good), exists)
	if err != nil {
		t.Fatal(err)
	}
	if c.APISocket != "/tmp/oc.sock" || len(c.Interfaces) != 2 || c.Interfaces[1].IGMP.QueryInterval != 30*time.Second ||
		!c.Interfaces[1].IGMP.ExplicitTracking || len(c.Interfaces[1].IGMP.StaticGroups) != 2 || c.Keepalive != DefaultKeepalive {
		t.Fatalf("%+v", c)
	}
}

func TestRejected(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"unknown key", "interfaces:\n  - name: eth0\n    igmpp: {}\n", "overcast.yaml:3: field igmpp not found"},
		{"unknown top key", "interface:\n  - name: eth0\n", "overcast.yaml:1: field interface not found"},
		{"missing interface", "interfaces:\n  - name: eth0\n  - name: eth9\n", `overcast.yaml:3: interface "eth9" does not exist`},
		{"bad group", "interfaces:\n  - name: eth0\n    igmp:\n      static-groups:\n        - 239.1.1.1\n        - 10.0.0.1\n", `overcast.yaml:6: static group "10.0.0.1" is not an IPv4 multicast address`},
		{"bad version", "interfaces:\n  - name: eth0\n    igmp:\n      version: 4\n", "overcast.yaml:4: igmp version 4"},
		{"bad duration", "interfaces:\n  - name: eth0\n    igmp:\n      query-interval: soon\n", "overcast.yaml:4:"},
		{"duplicate", "interfaces:\n  - name: eth0\n  - name: eth0\n", `overcast.yaml:3: interface "eth0" listed twice (first on line 2)`},
		{"no interfaces", "api-socket: /x\n", "no interfaces"},
		{"syntax", "interfaces:\n  - name: [\n", "overcast.yaml:"},
		{"qri >= qi", "interfaces:\n  - name: eth0\n    igmp:\n      query-interval: 10s\n      query-response-interval: 10s\n", "overcast.yaml:5: query-response-interval must be shorter"},
	}
	for _, c := range cases {
		_, err := Parse("overcast.yaml", []byte(c.text), exists)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}
