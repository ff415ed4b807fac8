package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"overcast/internal/testkit/schemacheck"
	"regexp"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
	"overcast/internal/tools/mcast"
)

// pairLab is two hosts on one link, with a route for multicast on it.
const pairLab = `name: pair
nodes:
  - name: h1
    routes: ["224.0.0.0/4 dev eth0"]
  - name: h2
    routes: ["224.0.0.0/4 dev eth0"]
links:
  - {a: "h1:eth0", a-addr: 10.0.9.1/24, b: "h2:eth0", b-addr: 10.0.9.2/24}
`

// recvRun runs `overcast recv -json` to completion and returns its
// statistics and exit code.
func recvRun(t *testing.T, l *lab.Lab, node string, ready func(), args ...string) (mcast.Stats, int) {
	t.Helper()
	cmd := l.Command(node, append([]string{bin, "recv", "-json"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // joined before the sender starts
	ready()
	code := exitStatus(t, cmd.Wait())
	var st mcast.Stats
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
		t.Fatalf("recv output %q (stderr %q): %v", out.String(), errb.String(), err)
	}
	schemacheck.Check(t, "tool_recv", []byte(out.String()))
	return st, code
}

// exitStatus is a finished command's exit status; other errors fail the test.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

func nftApply(t *testing.T, l *lab.Lab, node, rules string) {
	t.Helper()
	if out, err := l.Exec(node, "sh", "-c", "nft -f - <<'EOF'\n"+rules+"\nEOF"); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
}

func nftCounter(t *testing.T, l *lab.Lab, node, comment string) int {
	t.Helper()
	out, err := l.Exec(node, "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`counter packets (\d+) bytes \d+.*comment "` + comment + `"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter %q in\n%s", comment, out)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// send -> recv: 10,000 packets arrive whole; then nftables drops every
// sequence number whose low nibble is 5 and a second sender replays the
// first 100 sequence numbers, and recv must count exactly that.
func TestRecvCountsExactLossAndDuplicates(t *testing.T) {
	l := startLab(t, pairLab)
	st, code := recvRun(t, l, "h2", func() {
		send(t, l, "h1", "-g", "239.7.7.7", "-count", "10000", "-rate", "5000", "-id", "7")
	}, "-g", "239.7.7.7", "-idle", "1s", "-expect-loss", "0", "-expect-dups", "0", "-expect-packets", "10000")
	if len(st.Streams) != 1 || code != 0 {
		t.Fatalf("clean run: exit %d, %+v", code, st.Streams)
	}
	if s := st.Streams[0]; s.Packets != 10000 || s.Lost != 0 || s.Dups != 0 || s.Sender != 7 || s.TTL != 32 || s.Source != "10.0.9.1" {
		t.Fatalf("clean run: %+v", s)
	}

	// The sequence number's low byte is UDP payload byte 15: bits 184-191
	// of the transport header; its low nibble is bits 188-191.
	rules := `table inet loss {
  chain in {
    type filter hook input priority 0;
    ip daddr 239.7.7.8 udp dport 5001 @th,188,4 5 counter drop comment "seqdrop"
  }
}`
	nftApply(t, l, "h2", rules)
	st, code = recvRun(t, l, "h2", func() {
		send(t, l, "h1", "-g", "239.7.7.8", "-count", "10000", "-rate", "5000", "-id", "7")
		send(t, l, "h1", "-g", "239.7.7.8", "-count", "100", "-rate", "1000", "-id", "7", "-seq", "0")
	}, "-g", "239.7.7.8", "-idle", "1s", "-expect-loss", "0")
	wantLost, wantReplayDropped := 0, 0
	for seq := range 10000 {
		if seq%16 == 5 {
			wantLost++
			if seq < 100 {
				wantReplayDropped++
			}
		}
	}
	if got := nftCounter(t, l, "h2", "seqdrop"); got != wantLost+wantReplayDropped {
		t.Fatalf("nftables dropped %d, want %d", got, wantLost+wantReplayDropped)
	}
	if len(st.Streams) != 1 {
		t.Fatalf("streams: %+v", st.Streams)
	}
	s := st.Streams[0]
	wantDups := 100 - wantReplayDropped
	if s.Lost != uint64(wantLost) || s.Dups != uint64(wantDups) || s.Packets != uint64(10000-wantLost+wantDups) {
		t.Fatalf("recv counted lost %d dups %d packets %d; want %d, %d, %d", s.Lost, s.Dups, s.Packets, wantLost, wantDups, 10000-wantLost+wantDups)
	}
	if code != 3 {
		t.Fatalf("-expect-loss 0 with %d lost: exit %d, want 3", s.Lost, code)
	}
	t.Logf("nftables dropped %d; recv: lost %d, duplicates %d, gaps %d", wantLost+wantReplayDropped, s.Lost, s.Dups, s.Gaps)
}

// iperf2 in both directions: recv measures an iperf client's stream (with a
// known window of its datagram ids dropped), and iperf's server measures send.
func TestIperfInterop(t *testing.T) {
	l := startLab(t, pairLab)
	// iperf's datagram id is the first 32 bits of the payload (transport
	// header bits 64-95). Drop ids 300-399.
	rules := `table inet loss {
  chain in {
    type filter hook input priority 0;
    udp dport 5001 @th,64,32 300-399 counter drop comment "iddrop"
  }
}`
	nftApply(t, l, "h2", rules)
	var iperfOut string
	st, _ := recvRun(t, l, "h2", func() {
		out, err := l.Exec("h1", "iperf", "-c", "239.7.7.9", "-u", "-T", "32", "-b", "2M", "-l", "200", "-t", "1")
		if err != nil {
			t.Fatalf("iperf client: %v %s", err, out)
		}
		iperfOut = out
	}, "-g", "239.7.7.9", "-idle", "1s")
	if len(st.Streams) != 1 {
		t.Fatalf("streams: %+v", st.Streams)
	}
	s := st.Streams[0]
	m := regexp.MustCompile(`Sent (\d+) datagrams`).FindStringSubmatch(iperfOut)
	if m == nil {
		t.Fatalf("iperf client output: %s", iperfOut)
	}
	var sent uint64
	fmt.Sscan(m[1], &sent)
	dropped := nftCounter(t, l, "h2", "iddrop")
	if dropped != 100 || s.Lost != 100 || s.Foreign != s.Packets || s.LastSeq < 1000 {
		t.Fatalf("iperf stream: nft dropped %d, recv %+v", dropped, s)
	}
	// iperf numbers datagrams from 1 and ends with one negated id; its
	// "Sent" figure counts that end datagram and is one ahead of the last id.
	if s.FirstSeq != 1 || s.Packets+100 != s.Expected || s.EndMarks == 0 || sent != s.LastSeq+2 {
		t.Errorf("iperf sent %d datagrams; recv saw ids %d-%d, %d data packets, %d end marks", sent, s.FirstSeq, s.LastSeq, s.Packets, s.EndMarks)
	}
	t.Logf("iperf sent %d; recv: %d packets, %d lost, jitter %.3f ms", sent, s.Packets, s.Lost, s.JitterMS)

	// The other way: iperf's server measures Overcast's sender.
	srv := l.Command("h2", "iperf", "-s", "-u", "-B", "239.7.7.10", "-i", "1")
	var out strings.Builder
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(500 * time.Millisecond)
	send(t, l, "h1", "-g", "239.7.7.10", "-format", "iperf", "-count", "1000", "-rate", "1000", "-size", "200")
	eventually(t, 5*time.Second, "iperf server's final report", func() string {
		if regexp.MustCompile(`0\.0+-\d+\.\d+ sec .* 100/1000 \(10%\)`).MatchString(out.String()) {
			return ""
		}
		return out.String()
	})
}

// Thousands of groups from one process: memberships are spread across
// sockets so the kernel's 20-per-socket default is not hit, and every
// group's stream is received.
func TestRecvThousandsOfGroups(t *testing.T) {
	l := startLab(t, pairLab)
	st, code := recvRun(t, l, "h2", func() {
		send(t, l, "h1", "-g", "239.20.0.0+1999", "-count", "5", "-rate", "10")
	}, "-g", "239.20.0.0+1999", "-idle", "1s", "-expect-loss", "0", "-expect-packets", "10000")
	if code != 0 || st.Joined != 2000 || st.Sockets != 100 || len(st.Streams) != 2000 {
		t.Fatalf("exit %d, joined %d over %d sockets, %d streams", code, st.Joined, st.Sockets, len(st.Streams))
	}
	for _, s := range st.Streams {
		if s.Packets != 5 || s.Lost != 0 {
			t.Fatalf("stream %+v", s)
		}
	}
}

// ping across a router: exactly the responders that joined answer, one hop
// away; a host that joined nothing stays silent.
func TestPingFindsExactlyTheResponders(t *testing.T) {
	l := startLab(t, routerLab(""))
	for _, n := range []string{"rcv1", "rcv3"} {
		cmd := l.Command(n, bin, "ping", "-respond", "-g", G, "-name", n, "-duration", "60s")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	c := api.NewClient(l.Socket("r1"))
	eventually(t, 5*time.Second, "rcv1 joined", func() string { return hasGroup(c, "lan1", G) })
	eventually(t, 5*time.Second, "rcv3 joined", func() string { return hasGroup(c, "lan3", G) })
	out, err := l.Exec("src", bin, "ping", "-g", G, "-c", "5", "-interval", "100ms", "-json", "-expect", "2")
	if err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	var res struct {
		Sent       int
		Responders []struct {
			Address, Name string
			Replies, Hops int
			TTL           int `json:"ttl_at_arrival"`
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	schemacheck.Check(t, "tool_ping", []byte(out))
	if res.Sent != 5 || len(res.Responders) != 2 {
		t.Fatalf("%+v", res)
	}
	for i, want := range []struct{ addr, name string }{{"10.0.2.10", "rcv1"}, {"10.0.4.10", "rcv3"}} {
		r := res.Responders[i]
		// Five replies each; the first probe can race the router's
		// route for a new source, so allow it to be the one lost.
		if r.Address != want.addr || r.Name != want.name || r.Hops != 1 || r.TTL != 31 || r.Replies < 4 {
			t.Errorf("responder %d: %+v, want %s (%s), 1 hop, TTL 31", i, r, want.addr, want.name)
		}
	}
	// Nobody joined 239.1.1.2: exit status 1 and no responders.
	if out, err := l.Exec("src", bin, "ping", "-g", "239.1.1.2", "-c", "2", "-interval", "100ms", "-wait", "300ms"); err == nil {
		t.Fatalf("ping to a group nobody joined succeeded:\n%s", out)
	}
}

// Debian's ssmping and asmping clients get unicast and multicast answers
// from an Overcast responder, as they would from ssmpingd.
func TestSSMPingClientsAgainstResponder(t *testing.T) {
	l := startLab(t, pairLab)
	cmd := l.Command("h2", bin, "ping", "-respond", "-g", "239.7.7.7", "-duration", "60s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(300 * time.Millisecond)
	for _, args := range [][]string{{"ssmping", "-4", "-c", "3", "10.0.9.2"}, {"asmping", "-c", "3", "239.9.9.9", "10.0.9.2"}} {
		out, err := l.Exec("h1", append([]string{"timeout", "10"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		uni := regexp.MustCompile(`unicast:\s+3 packets received, 0% packet loss`).MatchString(out)
		multi := regexp.MustCompile(`multicast:\s+3 packets received, 0% packet loss`).MatchString(out)
		if !uni || !multi {
			t.Fatalf("%s: unicast ok %v, multicast ok %v:\n%s", args[0], uni, multi, out)
		}
	}
}
