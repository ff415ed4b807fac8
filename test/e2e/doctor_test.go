package e2e

import (
	"encoding/json"
	"overcast/internal/testkit/schemacheck"
	"strings"
	"testing"

	"overcast/internal/lab"
	"overcast/internal/tools/doctor"
)

// doctorLab: src --- r1 (overcast; querier on lan1, none on lan2) --- lan1: rcv
//
//	\-- lan2: rcv2
//
// and rcv has a second leg to "side", for an asymmetric path.
const doctorLab = `name: doctor
nodes:
  - name: src
    routes: ["default via 10.0.1.1"]
  - name: r1
    kind: router
    overcast: |
      interfaces:
        - name: eth0
        - name: lan1
          igmp: {query-interval: 1s, query-response-interval: 500ms}
        - name: lan2
          igmp: {querier: false}
  - name: rcv
    routes: ["default via 10.0.2.1"]
  - name: rcv2
    routes: ["default via 10.0.3.1"]
  - name: side
links:
  - {a: "src:eth0",  a-addr: 10.0.1.10/24, b: "r1:eth0",   b-addr: 10.0.1.1/24}
  - {a: "rcv:eth0",  a-addr: 10.0.2.10/24, b: "r1:lan1",   b-addr: 10.0.2.1/24}
  - {a: "rcv2:eth0", a-addr: 10.0.3.10/24, b: "r1:lan2",   b-addr: 10.0.3.1/24}
  - {a: "rcv:eth1",  a-addr: 10.0.5.10/24, b: "side:eth0", b-addr: 10.0.5.1/24}
`

// runDoctor runs `overcast doctor -json` and returns its findings and exit code.
func runDoctor(t *testing.T, l *lab.Lab, node string, args ...string) ([]doctor.Finding, int) {
	t.Helper()
	cmd := l.Command(node, append([]string{bin, "doctor", "-json"}, args...)...)
	out, err := cmd.Output()
	code := exitStatus(t, err)
	var res struct{ Findings []doctor.Finding }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("doctor output %q: %v", out, err)
	}
	schemacheck.Check(t, "tool_doctor", out)
	return res.Findings, code
}

// expectFinding asserts the check has the level and a fix containing fix,
// and returns the finding.
func expectFinding(t *testing.T, fs []doctor.Finding, check string, level doctor.Level, fix string) doctor.Finding {
	t.Helper()
	for _, f := range fs {
		if f.Check == check && f.Level == level {
			if !strings.Contains(f.Fix, fix) {
				t.Fatalf("%s: fix %q, want it to contain %q", check, f.Fix, fix)
			}
			return f
		}
	}
	t.Fatalf("no %s on %q in:\n%s", level, check, dump(fs))
	return doctor.Finding{}
}

func dump(fs []doctor.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(string(f.Level) + " " + f.Check + ": " + f.Detail + "\n")
	}
	return b.String()
}

func mustExec(t *testing.T, l *lab.Lab, node string, args ...string) {
	t.Helper()
	if out, err := l.Exec(node, args...); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// Every fault built deliberately is named with its fix; a healthy receiver
// is all OK; and the fixes doctor prints, run as printed, clear the fault.
func TestDoctorFindsEachFault(t *testing.T) {
	l := startLab(t, doctorLab)
	sendBackground(t, l, "src", "-g", G, "-rate", "200", "-duration", "60s")

	t.Run("healthy", func(t *testing.T) {
		fs, code := runDoctor(t, l, "rcv", "-i", "eth0", "-g", G, "-s", "10.0.1.10", "-listen", "2500ms")
		if code != 0 || doctor.Worst(fs) != doctor.OK {
			t.Fatalf("exit %d on a healthy receiver:\n%s", code, dump(fs))
		}
		q := expectFinding(t, fs, "querier", doctor.OK, "")
		tr := expectFinding(t, fs, "traffic for "+G, doctor.OK, "")
		if !strings.Contains(q.Detail, "10.0.2.1 (IGMPv3") || !strings.Contains(tr.Detail, "10.0.1.10:") || !strings.Contains(tr.Detail, "TTL 31") {
			t.Fatalf("querier %q, traffic %q", q.Detail, tr.Detail)
		}
	})

	t.Run("multicast flag off", func(t *testing.T) {
		mustExec(t, l, "rcv", "ip", "link", "set", "eth0", "multicast", "off")
		fs, code := runDoctor(t, l, "rcv", "-i", "eth0")
		f := expectFinding(t, fs, "interface eth0", doctor.Fail, "ip link set dev eth0 multicast on")
		if code != 2 {
			t.Fatalf("exit %d with a FAIL", code)
		}
		mustExec(t, l, "rcv", strings.Fields(f.Fix)...)
		fs, _ = runDoctor(t, l, "rcv", "-i", "eth0")
		expectFinding(t, fs, "interface eth0", doctor.OK, "")
	})

	t.Run("strict rp_filter with an asymmetric path", func(t *testing.T) {
		mustExec(t, l, "rcv", "ip", "route", "add", "10.0.1.0/24", "via", "10.0.5.1", "dev", "eth1")
		mustExec(t, l, "rcv", "sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1")
		defer l.Exec("rcv", "ip", "route", "del", "10.0.1.0/24")
		defer l.Exec("rcv", "sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0")
		fs, code := runDoctor(t, l, "rcv", "-i", "eth0", "-g", G, "-s", "10.0.1.10", "-listen", "2s")
		f := expectFinding(t, fs, "rp_filter", doctor.Fail, "rp_filter=2")
		if !strings.Contains(f.Detail, "goes out of eth1") || code != 2 {
			t.Fatalf("exit %d, %q", code, f.Detail)
		}
		// The fault is real: nothing reached the receiver.
		expectFinding(t, fs, "traffic for "+G, doctor.Warn, "")
		// Without -s, doctor still sees the kernel's rp_filter drop counter move.
		fs, _ = runDoctor(t, l, "rcv", "-i", "eth0", "-g", G, "-listen", "2s")
		f = expectFinding(t, fs, "rp_filter", doctor.Fail, "rp_filter=2")
		if !strings.Contains(f.Detail, "dropped") {
			t.Fatalf("%q", f.Detail)
		}
	})

	t.Run("no route for the group", func(t *testing.T) {
		mustExec(t, l, "rcv", "ip", "route", "del", "default")
		fs, code := runDoctor(t, l, "rcv", "-i", "eth0")
		f := expectFinding(t, fs, "route for 239.1.1.1", doctor.Fail, "ip route add 224.0.0.0/4 dev eth0")
		if code != 2 {
			t.Fatalf("exit %d", code)
		}
		mustExec(t, l, "rcv", strings.Fields(f.Fix)...)
		fs, _ = runDoctor(t, l, "rcv", "-i", "eth0")
		expectFinding(t, fs, "route for 239.1.1.1", doctor.OK, "")
		mustExec(t, l, "rcv", "ip", "route", "del", "224.0.0.0/4")
		mustExec(t, l, "rcv", "ip", "route", "add", "default", "via", "10.0.2.1")
	})

	t.Run("TTL 1 source one router away", func(t *testing.T) {
		sendBackground(t, l, "src", "-g", "239.1.1.9", "-rate", "200", "-duration", "10s", "-ttl", "1")
		// At the receiver nothing arrives; at the router, doctor names the cause.
		fs, _ := runDoctor(t, l, "rcv", "-i", "eth0", "-g", "239.1.1.9", "-listen", "1500ms")
		expectFinding(t, fs, "traffic for 239.1.1.9", doctor.Warn, "")
		fs, code := runDoctor(t, l, "r1", "-i", "eth0", "-g", "239.1.1.9", "-listen", "1500ms")
		f := expectFinding(t, fs, "sender TTL", doctor.Warn, "-ttl 32")
		if !strings.Contains(f.Detail, "10.0.1.10 sends 239.1.1.9 with TTL 1") || code == 0 {
			t.Fatalf("exit %d, %q", code, f.Detail)
		}
	})

	t.Run("nftables drops IGMP", func(t *testing.T) {
		nftApply(t, l, "rcv", `table inet f {
  chain in {
    type filter hook input priority 0;
    ip protocol igmp drop
  }
}`)
		fs, code := runDoctor(t, l, "rcv", "-i", "eth0")
		f := expectFinding(t, fs, "firewall", doctor.Fail, "nft delete rule inet f in handle")
		if !strings.Contains(f.Detail, "drops IGMP") || code != 2 {
			t.Fatalf("exit %d, %q", code, f.Detail)
		}
		mustExec(t, l, "rcv", strings.Fields(f.Fix)...)
		fs, _ = runDoctor(t, l, "rcv", "-i", "eth0")
		expectFinding(t, fs, "firewall", doctor.OK, "")
		mustExec(t, l, "rcv", "nft", "delete", "table", "inet", "f")
	})

	t.Run("no querier on the LAN", func(t *testing.T) {
		fs, code := runDoctor(t, l, "rcv2", "-i", "eth0", "-g", G, "-listen", "2s")
		expectFinding(t, fs, "querier", doctor.Warn, "querier")
		if code == 0 {
			t.Fatal("exit 0 with no querier")
		}
	})

	t.Run("SSM group without a source", func(t *testing.T) {
		fs, code := runDoctor(t, l, "rcv", "-i", "eth0", "-g", "232.1.1.1", "-listen", "1s")
		expectFinding(t, fs, "group 232.1.1.1", doctor.Fail, "-s SOURCE")
		if code != 2 {
			t.Fatalf("exit %d", code)
		}
	})
}

// On an Overcast router in a healthy lab doctor finds nothing wrong: its
// register device, its own querier's IGMP version and the routes it does
// not need are not faults.
func TestDoctorOnARouter(t *testing.T) {
	needMrouting(t)
	l := startLab(t, routerLab(""))
	fs, code := runDoctor(t, l, "r1")
	for _, f := range fs {
		if f.Level != doctor.OK {
			t.Errorf("%s: %s %s (fix %q)", f.Check, f.Level, f.Detail, f.Fix)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

// doctor on a host (no router needed): a firewall rule that drops the
// stream's UDP port, and a payload the path's MTU cannot carry, each
// named with its fix; the fix applied, the check is OK.
func TestDoctorPortAndMTU(t *testing.T) {
	l := startLab(t, `
name: docport
nodes:
  - name: h1
  - name: h2
    routes: ["224.0.0.0/4 dev eth0"]
links:
  - {a: "h1:eth0", a-addr: 10.0.9.1/24, b: "h2:eth0", b-addr: 10.0.9.2/24}
`)
	nftApply(t, l, "h2", "table inet f {\n chain in {\n  type filter hook input priority filter; policy accept;\n  udp dport 5001 drop\n }\n}\n")
	fs, code := runDoctor(t, l, "h2", "-i", "eth0", "--port", "5001")
	f := expectFinding(t, fs, "firewall", doctor.Fail, "nft delete rule inet f in handle")
	if !strings.Contains(f.Detail, "port 5001") || code != 2 {
		t.Fatalf("exit %d, %+v", code, f)
	}
	mustExec(t, l, "h2", strings.Fields(f.Fix)...)
	fs, _ = runDoctor(t, l, "h2", "-i", "eth0", "--port", "5001")
	expectFinding(t, fs, "firewall", doctor.OK, "")
	fs, _ = runDoctor(t, l, "h2", "-i", "eth0", "--port", "5002") // another stream's port: not this rule's
	expectFinding(t, fs, "firewall", doctor.OK, "")

	mustExec(t, l, "h2", "ip", "link", "set", "dev", "eth0", "mtu", "1300")
	fs, _ = runDoctor(t, l, "h2", "-i", "eth0", "--size", "1400")
	f = expectFinding(t, fs, "path MTU", doctor.Fail, "--size 1272")
	fs, _ = runDoctor(t, l, "h2", "-i", "eth0", "--size", "1272")
	expectFinding(t, fs, "path MTU", doctor.OK, "")
}
