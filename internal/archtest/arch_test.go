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

var protocol = []string{"internal/packet/ip4", "internal/packet/igmp", "internal/packet/pim", "internal/tools/addr", "internal/igmp", "internal/pim", "internal/sim", "internal/dataplane", "internal/dataplane/fake"}

var forbidden = []string{"net", "os", "os/exec", "syscall", "log", "log/slog", "net/http", "golang.org/x/sys", "golang.org/x/net",
	"github.com/vishvananda", "overcast/internal/daemon", "overcast/internal/api", "overcast/internal/config", "overcast/internal/dataplane/linuxmr", "overcast/internal/lab"}

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
