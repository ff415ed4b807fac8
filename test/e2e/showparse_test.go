package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/testkit/schemacheck"
)

// textfsmRecords parses text with a template of docs/textfsm (Debian's
// python3-textfsm) and returns its records.
func textfsmRecords(t *testing.T, template, text string) []map[string]any {
	t.Helper()
	f := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(f, []byte(text), 0o644)
	out, err := exec.Command("/usr/bin/python3", "../../internal/sim/testdata/textfsm_parse.py", "../../docs/textfsm/"+template+".textfsm", f).CombinedOutput()
	if err != nil {
		t.Fatalf("textfsm %s: %v\n%s", template, err, out)
	}
	var rs []map[string]any
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// On a real lab (shared tree then SPT through the RP), every router's
// show ip mroute parses with the IOS template into exactly its JSON's
// entries, and every view's JSON matches docs/api.schema.json.
func TestShowParsesOnALab(t *testing.T) {
	needMrouting(t)
	l := startLab(t, pimLab(nil))
	r := startRecv(t, l, "rcv", "-g", G)
	eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(api.NewClient(l.Socket("r3")), "lan", G) })
	pimLabReady(t, l)
	time.Sleep(200 * time.Millisecond)
	wait := sendBackground(t, l, "src", "-g", G, "-count", "3000", "-rate", "1000")
	time.Sleep(1500 * time.Millisecond)
	for _, node := range []string{"r1", "r2", "r3"} {
		// Text and JSON are two reads: compare them once the state holds
		// still between the two (it settles within the stream's first
		// second).
		eventually(t, 5*time.Second, node+": show ip mroute read by TextFSM = its JSON", func() string {
			text, err := l.Exec(node, bin, "show", "ip", "mroute", "--socket", l.Socket(node))
			if err != nil {
				return err.Error()
			}
			js, err := l.Exec(node, bin, "show", "ip", "mroute", "--json", "--socket", l.Socket(node))
			if err != nil {
				return err.Error()
			}
			schemacheck.Check(t, api.ViewSchemaName(api.PathMRoute), []byte(js))
			var rows []api.MRoute
			json.Unmarshal([]byte(js), &rows)
			rs := textfsmRecords(t, "cisco_ios_show_ip_mroute", text)
			if len(rs) != len(rows) || len(rows) == 0 {
				return fmt.Sprintf("TextFSM read %d entries, the JSON has %d:\n%s", len(rs), len(rows), text)
			}
			for i, row := range rows {
				if rs[i]["SOURCE"] != row.Source || rs[i]["GROUP"] != row.Group || rs[i]["FLAGS"] != row.Flags {
					return fmt.Sprintf("record %v for %+v", rs[i], row)
				}
			}
			return ""
		})
		if cs := textfsmRecords(t, "cisco_ios_show_ip_pim_neighbor", mustShow(t, l, node, "ip", "pim", "neighbor")); len(cs) != 2 {
			t.Errorf("%s: %d PIM neighbours parsed, want 2", node, len(cs))
		}
		for _, v := range api.Views {
			arg := ""
			switch {
			case strings.HasPrefix(v.Arg, "GROUP"):
				arg = G
			case v.Arg != "":
				arg = "10.0.1.10"
			}
			words := append(strings.Fields(v.Words), strings.Fields(arg)...)
			out, err := l.Exec(node, append(append([]string{bin, "show"}, words...), "--json", "--socket", l.Socket(node))...)
			if err != nil {
				continue // a component this router does not run says so
			}
			schemacheck.Check(t, api.ViewSchemaName(v.Path), []byte(out))
		}
	}
	wait(10 * time.Second)
	r.stop(t)
}

func mustShow(t *testing.T, l interface {
	Exec(string, ...string) (string, error)
	Socket(string) string
}, node string, words ...string) string {
	t.Helper()
	out, err := l.Exec(node, append(append([]string{bin, "show"}, words...), "--socket", l.Socket(node))...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
