package api

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTextMirror(t *testing.T) {
	var b bytes.Buffer
	textMirror(&b, "mirror", MirrorView{
		Services: []MirrorServiceRow{{Name: "ids", Target: "vxlan://10.9.0.2:4789", VNI: 4242, Rate: "none", VLAN: "keep", Origin: "config", Flows: 1,
			Counters: MirrorCounters{Mirrored: 10, Bytes: 1000, Skipped: 3}}},
		Flows: []MirrorFlowRow{{Name: "ids:vm1p:both", Service: "ids", Port: "vm1p", Direction: "both", Rules: []string{}, State: "attached", Origin: "config",
			Note: "copies of frames over 1464 octets are IP fragments", Counters: MirrorCounters{Mirrored: 10, Bytes: 1000, Skipped: 3}}},
	})
	out := b.String()
	for _, want := range []string{"Tap service", "vxlan://10.9.0.2:4789", "4242", "Tap flow", "ids:vm1p:both", "all", "attached", "  ids:vm1p:both: copies of frames over 1464"} {
		if !strings.Contains(out, want) {
			t.Errorf("show mirror lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	textMirror(&b, "mirror", MirrorView{})
	if !strings.Contains(b.String(), "no tap services (overcast mirror service add") {
		t.Errorf("empty: %s", b.String())
	}
}

// An action's JSON body reaches its handler; a bad request comes back
// as the handler's words.
func TestPostJSONBody(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 1)
	go Serve(ctx, sock, map[string]Handler{
		PathMirrorFlowAdd: func(arg string) (any, error) {
			got <- arg
			if strings.Contains(arg, "bad") {
				return nil, BadRequest{Err: errors.New("flow bad: no tap service")}
			}
			return MirrorChange{Kind: "flow", Name: "f", Action: "added"}, nil
		},
	})
	c := NewClient(sock)
	var out MirrorChange
	var err error
	for range 50 {
		if err = c.PostJSON(PathMirrorFlowAdd, map[string]string{"name": "f"}, &out); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || out.Action != "added" || <-got != `{"name":"f"}` {
		t.Fatalf("%+v %v", out, err)
	}
	if err := c.PostJSON(PathMirrorFlowAdd, map[string]string{"name": "bad"}, &out); err == nil || err.Error() != "flow bad: no tap service" {
		t.Fatalf("bad request: %v", err)
	}
}
