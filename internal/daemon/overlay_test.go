package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"overcast/internal/api"
	"overcast/internal/dataplane"
	"overcast/internal/dataplane/fake"
)

const ovlYAML = `
interfaces:
  - name: eth0
overlay:
  address: 192.0.2.1
  key: daemon-test-overlay-key
  peers: [192.0.2.2, 192.0.2.3]
`

func overlayHarness(t *testing.T, yaml string) (*harness, *fake.OverlayHub) {
	hub := fake.NewOverlayHub()
	h := newHarnessWith(t, yaml, func(h *harness, env *Env) {
		h.ln.ifs["ovl0"] = dataplane.Link{Index: 40, Addr: netip.MustParseAddr("192.0.2.1"), Multicast: true}
		env.Overlay = hub.Open
	})
	return h, hub
}

func peerRows(t *testing.T, h *harness) map[string]api.OverlayPeer {
	t.Helper()
	v, err := h.d.View(h.now, api.PathOverlayPeers, "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.OverlayPeer{}
	for _, p := range v.([]api.OverlayPeer) {
		out[p.Peer] = p
	}
	return out
}

// Peers reload as a diff; the API adds and removes peers and refuses
// nonsense with a reason; a peer in the config and the API stays until
// both let go.
func TestOverlayPeersReloadAndAPI(t *testing.T) {
	h, hub := overlayHarness(t, ovlYAML)
	if got := peerRows(t, h); len(got) != 2 {
		t.Fatalf("peers %v", got)
	}
	sent := hub.Queued()
	if sent != 2 {
		t.Fatalf("%d greetings sent, want one hello per peer", sent)
	}
	h.write(strings.Replace(ovlYAML, "192.0.2.2, 192.0.2.3", "192.0.2.3, 192.0.2.4:7000", 1))
	if err := h.d.ReloadFile(h.now); err != nil {
		t.Fatal(err)
	}
	got := peerRows(t, h)
	if _, ok := got["192.0.2.2:6790"]; ok || len(got) != 2 || got["192.0.2.4:7000"].Origin != "static" {
		t.Fatalf("after reload: %v", got)
	}
	if _, err := h.d.View(h.now, api.PathOverlayPeerAdd, "192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	if got := peerRows(t, h)["192.0.2.3:6790"].Origin; got != "static,api" {
		t.Fatalf("origin %q", got)
	}
	v, err := h.d.View(h.now, api.PathOverlayPeerDel, "192.0.2.3")
	if err != nil || !strings.Contains(v.(api.OverlayPeerChange).Action, "kept") {
		t.Fatalf("del of a static peer: %v %v", v, err)
	}
	for _, bad := range []string{"239.1.1.1", "192.0.2.1", "nonsense"} {
		if _, err := h.d.View(h.now, api.PathOverlayPeerAdd, bad); err == nil {
			t.Errorf("peer add %s accepted", bad)
		}
	}
	if _, err := h.d.View(h.now, api.PathOverlayPeerDel, "192.0.2.99"); err == nil || !strings.Contains(err.Error(), "not an overlay peer") {
		t.Errorf("del of a stranger: %v", err)
	}
	// Settings fixed at start are refused, the running state kept.
	h.write(strings.Replace(ovlYAML, "daemon-test-overlay-key", "another-overlay-key-123", 1))
	if err := h.d.ReloadFile(h.now); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("key change: %v", err)
	}
	if len(peerRows(t, h)) != 2 {
		t.Fatal("a rejected reload changed the peers")
	}
	h.checkViews("10.0.1.10", "239.1.1.1")
}
