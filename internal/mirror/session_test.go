package mirror

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"10000pps": {PPS: 10000}, "100mbps": {BPS: 100e6}, "1gbps": {BPS: 1e9}, "500 kbps": {BPS: 500e3}, "64bps": {BPS: 64},
	} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0pps", "fast", "10", "-5pps", "99999999999999gbps"} {
		if _, err := ParseRate(bad); err == nil || !strings.Contains(err.Error(), "want N followed by") {
			t.Errorf("%q: %v, want the syntax named", bad, err)
		}
	}
}

func TestParseTarget(t *testing.T) {
	c, p, err := ParseTarget("vxlan://192.0.2.10")
	if err != nil || c != netip.MustParseAddrPort("192.0.2.10:4789") || p != "" {
		t.Fatalf("%v %q %v", c, p, err)
	}
	if c, _, _ := ParseTarget("vxlan://192.0.2.10:4790"); c.Port() != 4790 {
		t.Fatalf("port %d", c.Port())
	}
	if _, p, err := ParseTarget("port:tap0"); err != nil || p != "tap0" {
		t.Fatalf("%q %v", p, err)
	}
	for _, bad := range []string{"192.0.2.10", "vxlan://239.1.1.1", "vxlan://0.0.0.0", "vxlan://127.0.0.1", "vxlan://host", "port:", "port:a/b", "port:waytoolonginterfacename"} {
		if _, _, err := ParseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func svc(name string) Service {
	return Service{Name: name, Collector: netip.MustParseAddrPort("192.0.2.10:4789"), VNI: 7}
}

func TestSetCheck(t *testing.T) {
	ok := Set{Services: []Service{svc("a"), {Name: "b", Port: "mon0", Truncate: 128, MAC: "02:00:00:00:00:01"}},
		Flows: []Flow{{Name: "f", Service: "a", Port: "tap0", Direction: Both, Rules: []string{"accept dst 8.8.8.8"}}}}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]struct {
		s    Set
		says string
	}{
		"no target":       {Set{Services: []Service{{Name: "a", VNI: 1}}}, "no target"},
		"both targets":    {Set{Services: []Service{{Name: "a", VNI: 1, Port: "x", Collector: svc("a").Collector}}}, "both"},
		"VNI 0":           {Set{Services: []Service{{Name: "a", Collector: svc("a").Collector}}}, "VNI 0"},
		"VNI too big":     {Set{Services: []Service{{Name: "a", Collector: svc("a").Collector, VNI: 1 << 24}}}, "VNI 16777216"},
		"VNI on a port":   {Set{Services: []Service{{Name: "a", Port: "m0", VNI: 3}}}, "means nothing"},
		"short truncate":  {Set{Services: []Service{{Name: "a", Port: "m0", Truncate: 20}}}, "truncate 20"},
		"group MAC":       {Set{Services: []Service{{Name: "a", Port: "m0", MAC: "01:00:5e:00:00:01"}}}, "group address"},
		"bad MAC":         {Set{Services: []Service{{Name: "a", Port: "m0", MAC: "zz"}}}, "six hex octets"},
		"two rates":       {Set{Services: []Service{{Name: "a", Port: "m0", Rate: Rate{PPS: 1, BPS: 1}}}}, "give one"},
		"bad name":        {Set{Services: []Service{{Name: "a b", Port: "m0"}}}, "service name"},
		"dup service":     {Set{Services: []Service{svc("a"), svc("a")}}, "defined twice"},
		"no service":      {Set{Services: []Service{svc("a")}, Flows: []Flow{{Name: "f", Service: "z", Port: "t", Direction: In}}}, `no tap service "z"`},
		"dup flow":        {Set{Services: []Service{svc("a")}, Flows: []Flow{{Name: "f", Service: "a", Port: "t", Direction: In}, {Name: "f", Service: "a", Port: "u", Direction: In}}}, "defined twice"},
		"no direction":    {Set{Services: []Service{svc("a")}, Flows: []Flow{{Name: "f", Service: "a", Port: "t"}}}, "no direction"},
		"bad rule":        {Set{Services: []Service{svc("a")}, Flows: []Flow{{Name: "f", Service: "a", Port: "t", Direction: In, Rules: []string{"accept dport 80"}}}}, "ports need proto"},
		"tap the monitor": {Set{Services: []Service{{Name: "a", Port: "m0"}}, Flows: []Flow{{Name: "f", Service: "a", Port: "m0", Direction: In}}}, "tapped again"},
	} {
		err := c.s.Check()
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an error saying %q", what, err, c.says)
		}
	}
}

// A flow without rules mirrors everything; with rules, what no rule
// accepts is not mirrored.
func TestFlowFilterDefault(t *testing.T) {
	all, err := Flow{Name: "f"}.Filter()
	if err != nil {
		t.Fatal(err)
	}
	p := Packet{Proto: 17, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	if ok, _ := all.Classify(p); !ok {
		t.Fatal("a flow without rules did not mirror")
	}
	some, _ := Flow{Name: "f", Rules: []string{"accept proto tcp"}}.Filter()
	if ok, _ := some.Classify(p); ok {
		t.Fatal("a UDP packet no rule accepts was mirrored")
	}
}

func TestMerge(t *testing.T) {
	file := Set{Services: []Service{svc("a")}, Flows: []Flow{{Name: "f", Service: "a", Port: "t", Direction: In}}}
	run := Set{Services: []Service{svc("b")}, Flows: []Flow{{Name: "g", Service: "a", Port: "t", Direction: Out}}}
	m, err := file.Merge(run)
	if err != nil || len(m.Services) != 2 || len(m.Flows) != 2 || m.Check() != nil {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := file.Merge(Set{Services: []Service{svc("a")}}); err == nil || !strings.Contains(err.Error(), "del one of them") {
		t.Fatalf("a service in both: %v", err)
	}
	if _, err := file.Merge(Set{Flows: []Flow{{Name: "f"}}}); err == nil {
		t.Fatal("a flow in both merged")
	}
}

// The API carries services and flows as JSON: they come back the same.
func TestJSONRoundTrip(t *testing.T) {
	s := Set{Services: []Service{svc("a"), {Name: "b", Port: "m0", Truncate: 128, Rate: Rate{PPS: 10}, StripVLAN: true, MAC: "02:00:00:00:00:01"}},
		Flows: []Flow{{Name: "f", Service: "a", Port: "tap0", Direction: Both, Rules: []string{"10 accept sg 10.0.1.10,239.1.1.1"}}}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Set
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) || back.Flows[0].Direction != Both || back.Services[0].Collector != s.Services[0].Collector {
		t.Fatalf("%s\n%s", b, b2)
	}
	if err := json.Unmarshal([]byte(`{"flows":[{"direction":"sideways"}]}`), &back); err == nil {
		t.Fatal("a bad direction decoded")
	}
}

// FuzzSetCheck: whatever JSON the API is sent, Check answers without
// panicking, and a set it accepts has flows whose filters parse.
func FuzzSetCheck(f *testing.F) {
	f.Add(`{"services":[{"name":"a","collector":"192.0.2.1:4789","vni":5}],"flows":[{"name":"f","service":"a","port":"t","direction":"both","rules":["accept"]}]}`)
	f.Add(`{"services":[{"name":"a","port":"m0","truncate":64,"mac":"02:00:00:00:00:01"}]}`)
	f.Fuzz(func(t *testing.T, js string) {
		var s Set
		if json.Unmarshal([]byte(js), &s) != nil {
			return
		}
		if s.Check() != nil {
			return
		}
		for _, fl := range s.Flows {
			if _, err := fl.Filter(); err != nil {
				t.Fatalf("accepted flow %+v: %v", fl, err)
			}
			if _, ok := s.Service(fl.Service); !ok {
				t.Fatalf("accepted flow %+v of no service", fl)
			}
		}
	})
}
