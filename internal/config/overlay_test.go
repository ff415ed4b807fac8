package config

import (
	"strings"
	"testing"
)

func TestOverlayConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"overlay:\n  address: 192.0.2.1\n  key: short\n", "at least 16"},
		{"overlay:\n  address: 239.1.1.1\n  key: daemon-test-overlay-key\n", "underlay address"},
		{"overlay:\n  address: 192.0.2.1\n  key: daemon-test-overlay-key\n  peers: [192.0.2.2, 192.0.2.2]\n", "listed twice"},
		{"overlay:\n  address: 192.0.2.1\n  key: daemon-test-overlay-key\n  hold-time: 500ms\n", "hold-time"},
		{"interfaces: [{name: ovl0}]\noverlay:\n  address: 192.0.2.1\n  key: daemon-test-overlay-key\n", "overlay's own device"},
	} {
		_, err := Parse("test.yaml", []byte(c.yaml), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "test.yaml:") {
			t.Errorf("%q: %v, want file:line and %q", c.yaml, err, c.want)
		}
	}
}
