// Package archtest keeps the dependency rule true without anyone remembering
// it: protocol packages import only the standard library (net/netip, not
// net), each other, and never sockets, the kernel, the daemon or the API.
package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var protocol = []string{"internal/packet/ip4", "internal/packet/igmp", "internal/packet/pim", "internal/tools/addr", "internal/igmp", "internal/pim", "internal/mrib", "internal/dataplane", "internal/dataplane/fake", "internal/packet/msdp", "internal/msdp", "internal/packet/overlay", "internal/overlay", "internal/mirror"}

var forbidden = []string{"net", "os", "os/exec", "syscall", "log", "log/slog", "net/http", "golang.org/x/sys", "golang.org/x/net",
	"github.com/vishvananda", "overcast/internal/daemon", "overcast/internal/api", "overcast/internal/config", "overcast/internal/dataplane/linuxmr", "overcast/internal/lab"}

// The daemon and the simulation drive the kernel only through the seams in
// internal/dataplane: the kernel adapter (internal/kernel) is wired in by
// the command, so the daemon runs on fakes without root.
var seamed = []string{"internal/daemon", "internal/sim"}

var kernelOnly = []string{"syscall", "golang.org/x/sys", "github.com/vishvananda", "overcast/internal/dataplane/linuxmr",
	"overcast/internal/kernel", "overcast/internal/rpf", "net"}

func TestDaemonUsesOnlySeams(t *testing.T) {
	for _, pkg := range seamed {
		for _, p := range imports(t, pkg) {
			for _, bad := range kernelOnly {
				if p == bad || (strings.Contains(bad, ".") || strings.HasPrefix(bad, "overcast/")) && strings.HasPrefix(p, bad+"/") {
					t.Errorf("%s imports %s: the daemon reaches the kernel only through dataplane seams", pkg, p)
				}
			}
		}
	}
}

// imports lists the imports of a package's non-test files.
func imports(t *testing.T, pkg string) []string {
	dir := filepath.Join("..", "..", pkg)
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", pkg)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out = append(out, p)
		}
	}
	return out
}

func TestProtocolPackagesStayPure(t *testing.T) {
	for _, pkg := range protocol {
		dir := filepath.Join("..", "..", pkg)
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", pkg)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					// Standard-library entries match exactly (net/netip is fine);
					// module paths match as prefixes.
					if p == bad || (strings.Contains(bad, ".") || strings.HasPrefix(bad, "overcast/")) && strings.HasPrefix(p, bad+"/") {
						t.Errorf("%s imports %s: protocol code must not touch I/O, the kernel or the daemon", f, p)
					}
				}
			}
		}
	}
}
