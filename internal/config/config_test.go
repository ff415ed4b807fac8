package config

import (
	"bytes"
	"os"
	"path/filepath"
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
		{"restart grace too long", "restart-grace: 1h\ninterfaces:\n  - name: eth0\n", "overcast.yaml:1: restart-grace 1h0m0s: want 0"},
		{"metrics without a port", "metrics: 127.0.0.1\ninterfaces:\n  - name: eth0\n", "overcast.yaml:1: metrics \"127.0.0.1\": want HOST:PORT"},
		{"metrics host a name", "metrics: localhost:9477\ninterfaces:\n  - name: eth0\n", `overcast.yaml:1: metrics "localhost:9477": "localhost" is not an IP address`},
		{"syntax", "interfaces:\n  - name: [\n", "overcast.yaml:"},
		{"link-local static group", "interfaces:\n  - name: eth0\n    igmp:\n      static-groups: [224.0.0.13]\n", "overcast.yaml:4: static group 224.0.0.13 is link-local"},
		{"second document", "interfaces:\n  - name: eth0\n---\ninterfaces:\n  - name: eth1\n", "overcast.yaml:3: a second YAML document"},
		{"qri >= qi", "interfaces:\n  - name: eth0\n    igmp:\n      query-interval: 10s\n      query-response-interval: 10s\n", "overcast.yaml:5: query-response-interval must be shorter"},
	}
	for _, c := range cases {
		_, err := Parse("overcast.yaml", []byte(c.text), exists)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

const goodPIM = `pim:
  rp:
    - address: 10.255.0.2
    - address: 10.255.0.9
      groups: 239.9.0.0/16
  ssm-range: [232.0.0.0/8, 239.232.0.0/16]
  spt-threshold:
    - {groups: 239.5.0.0/16, threshold: infinity}
  join-prune-interval: 30s
interfaces:
  - name: eth0
    pim: true
  - name: eth1
    pim: {dr-priority: 7, hello-interval: 10s}
`

// A file too large to be a config is refused before it is parsed.
func TestLoadSizeLimit(t *testing.T) {
	f := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(f, append([]byte("interfaces:\n  - name: eth0\n"), bytes.Repeat([]byte("# padding\n"), MaxFileSize/10+1)...), 0o644)
	if _, err := Load(f, exists); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
}

// The hostile-LAN settings parse.
func TestGoodPIMAdmission(t *testing.T) {
	c, err := Parse("overcast.yaml", []byte("pim:\n  register-from: [10.1.0.0/16, 10.0.1.1]\n  register-sources: [10.0.1.0/24]\n  register-rate: 100\n  limits: {routes: 1000, interface-routes: 500, register-sources: 100, neighbors: 4}\ninterfaces:\n  - name: eth0\n    pim: {neighbor-filter: [10.0.0.2]}\n"), exists)
	if err != nil {
		t.Fatal(err)
	}
	p := c.PIM
	if len(p.RegisterFrom) != 2 || p.RegisterRate != 100 || p.Limits.Routes != 1000 || p.Limits.Neighbors != 4 || c.Interfaces[0].PIM.NeighborFilter[0] != "10.0.0.2" || !c.Interfaces[0].PIM.Enabled {
		t.Fatalf("%+v %+v", p, c.Interfaces)
	}
}

func TestGoodPIM(t *testing.T) {
	c, err := Parse("overcast.yaml", []byte(goodPIM), exists)
	if err != nil {
		t.Fatal(err)
	}
	if !c.PIMEnabled() || len(c.PIM.RP) != 2 || c.PIM.RP[0].Groups != "224.0.0.0/4" || !c.Interfaces[0].PIM.Enabled ||
		!c.Interfaces[1].PIM.Enabled || c.Interfaces[1].PIM.DRPriority != 7 || c.Interfaces[1].PIM.HelloInterval != 10*time.Second ||
		c.PIM.SPTThreshold[0].Threshold != "infinity" || c.PIM.JoinPruneInterval != 30*time.Second {
		t.Fatalf("%+v %+v", c.PIM, c.Interfaces)
	}
	c, _ = Parse("overcast.yaml", []byte(good), exists)
	if c.PIMEnabled() {
		t.Fatal("PIM on without any pim setting")
	}
}

func TestRejectedPIM(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"rp unicast", "pim:\n  rp:\n    - address: 239.1.1.1\ninterfaces:\n  - name: eth0\n", `overcast.yaml:3: rp address "239.1.1.1"`},
		{"rp groups", "pim:\n  rp:\n    - address: 10.0.0.1\n      groups: 10.0.0.0/8\ninterfaces:\n  - name: eth0\n", `overcast.yaml:4: rp groups "10.0.0.0/8"`},
		{"rp twice", "pim:\n  rp:\n    - address: 10.0.0.1\n    - address: 10.0.0.2\n      groups: 224.0.0.0/4\ninterfaces:\n  - name: eth0\n", "overcast.yaml:4: rp for 224.0.0.0/4 given twice (first on line 3)"},
		{"ssm", "pim:\n  ssm-range: [10.0.0.0/8]\ninterfaces:\n  - name: eth0\n", `ssm-range "10.0.0.0/8"`},
		{"threshold", "pim:\n  spt-threshold:\n    - {groups: 239.0.0.0/8, threshold: 100 mbps}\ninterfaces:\n  - name: eth0\n", `overcast.yaml:3: spt-threshold "100 mbps"`},
		{"threshold zero", "pim:\n  spt-threshold:\n    - {groups: 239.0.0.0/8, threshold: 0 packets}\ninterfaces:\n  - name: eth0\n", `overcast.yaml:3: spt-threshold "0 packets"`},
		{"pim type", "interfaces:\n  - name: eth0\n    pim: maybe\n", "overcast.yaml:3:"},
		{"pim key", "interfaces:\n  - name: eth0\n    pim: {priority: 3}\n", "overcast.yaml:3:"},
		{"rp for ssm", "pim:\n  rp:\n    - {address: 10.0.0.1, groups: 232.1.0.0/16}\ninterfaces:\n  - name: eth0\n", "overcast.yaml:3: rp 10.0.0.1 for 232.1.0.0/16: the range is inside the SSM range 232.0.0.0/8"},
		{"neighbor filter", "interfaces:\n  - name: eth0\n    pim: {neighbor-filter: [10.0.0.2, 239.1.1.1]}\n", `overcast.yaml:3: neighbor-filter "239.1.1.1": not an IPv4 unicast address or prefix`},
		{"register filter", "pim:\n  register-from:\n    - 10.0.0.0/8\n    - bogus\ninterfaces:\n  - name: eth0\n", `overcast.yaml:4: register-from "bogus"`},
		{"limit", "pim:\n  limits: {routes: -5}\ninterfaces:\n  - name: eth0\n", "overcast.yaml:2: limits.routes -5: want a positive number, 0 for the default or -1 for no limit"},
		{"register rate", "pim:\n  register-rate: -2\ninterfaces:\n  - name: eth0\n", "overcast.yaml:2: register-rate -2"},
	}
	for _, c := range cases {
		_, err := Parse("overcast.yaml", []byte(c.text), exists)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestSPTThresholdParse(t *testing.T) {
	for _, c := range []struct {
		in            string
		never         bool
		packets, kbps uint64
	}{
		{"immediate", false, 0, 0}, {"0", false, 0, 0}, {"infinity", true, 0, 0},
		{"100 kbps", false, 0, 100}, {"100kbps", false, 0, 100}, {"64 packets", false, 64, 0}, {"1Packets", false, 1, 0},
	} {
		never, p, k, err := SPTRule{Threshold: c.in}.Parse()
		if err != nil || never != c.never || p != c.packets || k != c.kbps {
			t.Errorf("%q: %v %d %d %v", c.in, never, p, k, err)
		}
	}
	for _, bad := range []string{"fast", "-1 kbps", "kbps", "1.5 kbps", "99999999999 packets"} {
		if _, _, _, err := (SPTRule{Threshold: bad}).Parse(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

const goodMSDP = `pim:
  rp: [{address: 10.255.0.1}]
msdp:
  source: 10.255.0.1
  sa-limit: 1000
  peers:
    - {address: 10.255.0.2, mesh-group: core, password: s3cret, sa-filter-in: scoped, sa-filter-out: mine}
    - {address: 192.0.2.1, source: 192.0.2.2, default: true, remote-as: 65002}
  rpf-peers: [{rp: 198.51.100.0/24, peer: 192.0.2.1}]
  policies:
    mine:
      - {action: deny, group: 239.0.0.0/8}
      - {action: permit}
interfaces:
  - name: eth0
`

func TestGoodMSDP(t *testing.T) {
	c, err := Parse("overcast.yaml", []byte(goodMSDP), exists)
	if err != nil {
		t.Fatal(err)
	}
	m := c.MSDP
	if m.Source != "10.255.0.1" || len(m.Peers) != 2 || m.Peers[0].MeshGroup != "core" || m.Peers[1].RemoteAS != 65002 ||
		len(m.Policies["mine"]) != 2 || m.RPFPeers[0].Peer != "192.0.2.1" {
		t.Fatalf("%+v", m)
	}
}

func TestRejectedMSDP(t *testing.T) {
	base := "pim:\n  rp: [{address: 10.255.0.1}]\ninterfaces:\n  - name: eth0\nmsdp:\n"
	cases := []struct{ name, text, want string }{
		{"no pim", "interfaces:\n  - name: eth0\nmsdp:\n  source: 10.0.0.1\n", "overcast.yaml:4: msdp runs between RPs"},
		{"no source", base + "  peers: [{address: 10.0.0.2}]\n", "overcast.yaml:6: msdp peer 10.0.0.2: no source address"},
		{"bad peer", base + "  source: 10.0.0.1\n  peers: [{address: 239.1.1.1}]\n", `overcast.yaml:7: msdp peer address "239.1.1.1"`},
		{"peer twice", base + "  source: 10.0.0.1\n  peers:\n    - {address: 10.0.0.2}\n    - {address: 10.0.0.2}\n", "overcast.yaml:9: msdp peer 10.0.0.2 listed twice (first on line 8)"},
		{"own address", base + "  source: 10.0.0.1\n  peers: [{address: 10.0.0.1}]\n", "is this router's own source address"},
		{"unknown policy", base + "  source: 10.0.0.1\n  peers: [{address: 10.0.0.2, sa-filter-in: nope}]\n", `overcast.yaml:7: msdp peer 10.0.0.2: sa-filter-in "nope" is not a policy`},
		{"bad action", base + "  policies:\n    p: [{action: allow}]\n", `policy p rule 1: action "allow"`},
		{"builtin name", base + "  policies:\n    scoped: [{action: permit}]\n", `policy "scoped" is built in`},
		{"bad prefix", base + "  policies:\n    p: [{action: deny, source: 10.0.0.0/33}]\n", `source "10.0.0.0/33"`},
		{"rpf peer unknown", base + "  source: 10.0.0.1\n  rpf-peers: [{rp: 10.9.0.0/16, peer: 10.0.0.7}]\n", `rpf-peer "10.0.0.7" is not one of the msdp peers`},
		{"timers", base + "  keepalive: 90s\n  hold-time: 75s\n", "msdp keepalive 1m30s must be shorter than hold-time"},
		{"long key", base + "  source: 10.0.0.1\n  peers: [{address: 10.0.0.2, password: " + strings.Repeat("k", 81) + "}]\n", "TCP-MD5 keys are at most 80"},
	}
	for _, c := range cases {
		_, err := Parse("overcast.yaml", []byte(c.text), exists)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}
