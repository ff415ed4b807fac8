package daemon

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
	"overcast/internal/mirror"
)

const mirYAML = `interfaces:
  - name: eth0
mirror:
  services:
    - name: ids
      to: vxlan://192.0.2.10
      vni: 4242
  flows:
    - service: ids
      port: eth1
      direction: both
      rules: ["accept proto udp"]
`

func mirrorHarness(t *testing.T, yaml string) (*harness, *fake.Mirror, *int) {
	t.Helper()
	fm := fake.NewMirror("eth0", "eth1", "eth2", "mon0")
	opened := new(int)
	h := newHarnessWith(t, yaml, func(h *harness, env *Env) {
		env.Mirror = func() (dataplane.Mirror, error) { *opened++; return fm, nil }
	})
	return h, fm, opened
}

func mirrorRows(t *testing.T, h *harness) api.MirrorView {
	t.Helper()
	v, err := h.d.View(h.now, api.PathMirror, "")
	if err != nil {
		t.Fatal(err)
	}
	return v.(api.MirrorView)
}

func post(t *testing.T, h *harness, path string, body any) (api.MirrorChange, error) {
	t.Helper()
	arg := ""
	if s, ok := body.(string); ok {
		arg = s
	} else {
		b, _ := json.Marshal(body)
		arg = string(b)
	}
	v, err := h.d.View(h.now, path, arg)
	if err != nil {
		return api.MirrorChange{}, err
	}
	return v.(api.MirrorChange), nil
}

func udp(src, dst string) []byte {
	return append(pkt4(17, src, dst), make([]byte, 8)...)
}

func pkt4(proto byte, src, dst string) []byte {
	b := make([]byte, 20)
	b[0], b[9] = 0x45, proto
	s, d := mustAddr(src).As4(), mustAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return b
}

func TestMirrorFromConfigAndAPI(t *testing.T) {
	h, fm, opened := mirrorHarness(t, mirYAML)
	v := mirrorRows(t, h)
	if len(v.Services) != 1 || len(v.Flows) != 1 || v.Flows[0].Name != "ids:eth1:both" || v.Flows[0].State != "attached" || v.Flows[0].Origin != "config" {
		t.Fatalf("%+v", v)
	}
	fm.Tap("eth1", mirror.In, udp("10.0.1.5", "198.51.100.8"))
	fm.Tap("eth1", mirror.Out, pkt4(6, "198.51.100.8", "10.0.1.5"))
	fm.Tap("eth2", mirror.In, udp("10.0.2.5", "198.51.100.8")) // not a tapped port
	v = mirrorRows(t, h)
	if c := v.Services[0].Counters; c.Mirrored != 1 || c.Skipped != 1 || v.Services[0].Flows != 1 {
		t.Fatalf("service counters %+v", v.Services[0])
	}

	// Run time: a local service and a flow of it.
	if _, err := post(t, h, api.PathMirrorServiceAdd, mirror.Service{Name: "loc", Port: "mon0", Truncate: 64}); err != nil {
		t.Fatal(err)
	}
	ch, err := post(t, h, api.PathMirrorFlowAdd, mirror.Flow{Service: "loc", Port: "eth2", Direction: mirror.In})
	if err != nil || ch.Name != "loc:eth2:in" || ch.Services != 2 || ch.Flows != 2 {
		t.Fatalf("%+v %v", ch, err)
	}
	fm.Tap("eth2", mirror.In, udp("10.0.2.5", "198.51.100.8"))
	if len(fm.Copies["loc"]) != 1 || len(fm.Copies["loc"][0]) != 28 {
		t.Fatalf("copies %v", fm.Copies)
	}
	// Bad input: refused, nothing changed.
	applied := fm.Applied
	for _, bad := range []struct {
		path string
		body any
		says string
	}{
		{api.PathMirrorFlowAdd, mirror.Flow{Service: "nosuch", Port: "eth2", Direction: mirror.In}, `no tap service "nosuch"`},
		{api.PathMirrorFlowAdd, mirror.Flow{Service: "loc", Port: "eth7", Direction: mirror.In}, `no interface "eth7"`},
		{api.PathMirrorFlowAdd, mirror.Flow{Service: "loc", Port: "eth2", Direction: mirror.In, Rules: []string{"accept sport 5"}}, "ports need proto"},
		{api.PathMirrorServiceAdd, mirror.Service{Name: "ids", Port: "mon0"}, "in the config file"},
		{api.PathMirrorServiceAdd, "{not json", "want a JSON service"},
		{api.PathMirrorServiceDel, "ids", "in the config file"},
		{api.PathMirrorFlowDel, "ids:eth1:both", "in the config file"},
		{api.PathMirrorFlowDel, "nope", "no tap flow nope"},
	} {
		_, err := post(t, h, bad.path, bad.body)
		var br api.BadRequest
		if err == nil || !errors.As(err, &br) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%s %v: %v, want a bad request saying %q", bad.path, bad.body, err, bad.says)
		}
	}
	if fm.Applied != applied || len(mirrorRows(t, h).Flows) != 2 {
		t.Fatalf("bad input changed the data path (%d applies, was %d)", fm.Applied, applied)
	}

	// Reload: the file's flow changes, the run-time ones stay.
	h.write(strings.Replace(mirYAML, "accept proto udp", "accept proto tcp", 1))
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	v = mirrorRows(t, h)
	if len(v.Flows) != 2 || v.Flows[0].Rules[0] != "accept proto tcp" || v.Flows[1].Origin != "api" {
		t.Fatalf("after reload %+v", v.Flows)
	}
	// A reload the data path refuses (a port the kernel does not have) is
	// rejected whole, with the file and line.
	h.ln.ifs["eth9"] = h.ln.ifs["eth0"]
	h.write(strings.Replace(mirYAML, "port: eth1", "port: eth9", 1))
	err = h.d.ReloadFile(h.now)
	if err == nil || !strings.Contains(err.Error(), "overcast.yaml:") || !strings.Contains(err.Error(), `no interface "eth9"`) {
		t.Fatalf("reload onto a missing port: %v", err)
	}
	if f := mirrorRows(t, h).Flows[0]; f.Port != "eth1" || f.Rules[0] != "accept proto tcp" {
		t.Fatalf("a rejected reload changed the flow: %+v", f)
	}
	// Deleting a run-time service takes its flows.
	if _, err := post(t, h, api.PathMirrorServiceDel, "loc"); err != nil {
		t.Fatal(err)
	}
	if v := mirrorRows(t, h); len(v.Services) != 1 || len(v.Flows) != 1 {
		t.Fatalf("after del %+v", v)
	}
	if *opened != 1 {
		t.Fatalf("the data path was opened %d times", *opened)
	}
	h.checkViews("10.0.1.10", "239.1.1.1")
}

// A daemon with no mirror section loads nothing until a service comes.
func TestMirrorOpensOnFirstService(t *testing.T) {
	h, fm, opened := mirrorHarness(t, "interfaces:\n  - name: eth0\n")
	if v := mirrorRows(t, h); *opened != 0 || len(v.Services) != 0 || v.Flows == nil {
		t.Fatalf("%d opens, %+v", *opened, v)
	}
	if _, err := post(t, h, api.PathMirrorServiceAdd, mirror.Service{Name: "s", Collector: mustAddrPort("192.0.2.9:4789"), VNI: 9}); err != nil {
		t.Fatal(err)
	}
	if *opened != 1 || fm.Applied != 1 {
		t.Fatalf("%d opens, %d applies", *opened, fm.Applied)
	}
	// A data path that cannot open says why, and nothing is half-made.
	h2 := newHarnessWith(t, "interfaces:\n  - name: eth0\n", func(h *harness, env *Env) {
		env.Mirror = func() (dataplane.Mirror, error) { return nil, errors.New("mirroring needs eBPF") }
	})
	if _, err := post(t, h2, api.PathMirrorServiceAdd, mirror.Service{Name: "s", Port: "eth0"}); err == nil || !strings.Contains(err.Error(), "needs eBPF") {
		t.Fatalf("%v", err)
	}
	if v := mirrorRows(t, h2); len(v.Services) != 0 {
		t.Fatalf("%+v", v)
	}
}

func mustAddr(s string) netip.Addr         { return netip.MustParseAddr(s) }
func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
