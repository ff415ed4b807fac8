package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
)

// igmpFlood is one host's IGMPv3 reports for COUNT SSM channels (232.x.y.z,
// each from SOURCE), 120 records a report, with Router Alert, from SRC on
// eth0, sent ROUNDS times at RATE reports a second (0: as fast as a raw
// socket sends them).
const igmpFlood = `
import socket, struct, sys, time
from scapy.all import Ether, IP, IPOption_Router_Alert, Raw, raw
src, source, count, rounds, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
mac = open('/sys/class/net/eth0/address').read().strip()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
S = socket.inet_aton(source)
pkts = []
n = 0
while n < count:
    recs = b''
    k = 0
    while k < 120 and n < count:
        g = bytes([232, 1 + (n >> 16) % 250, (n >> 8) & 255, n & 255])
        recs += bytes([5, 0]) + struct.pack('!H', 1) + g + S  # ALLOW_NEW_SOURCES, one source
        n += 1; k += 1
    body = bytearray(bytes([0x22, 0, 0, 0, 0, 0]) + struct.pack('!H', k) + recs)
    body[2:4] = struct.pack('!H', csum(bytes(body)))
    pkts.append(raw(Ether(dst='01:00:5e:00:00:16', src=mac)/IP(src=src, dst='224.0.0.22', ttl=1, tos=0xc0, proto=2, options=[IPOption_Router_Alert()])/Raw(load=bytes(body))))
t0 = time.time()
sent = 0
for r in range(rounds):
    for p in pkts:
        s.send(p)
        sent += 1
        if rate and sent % 50 == 0:
            ahead = t0 + sent / rate - time.time()
            if ahead > 0: time.sleep(ahead)
print(count, len(pkts) * rounds, round(time.time() - t0, 2))
`

// One host on R3's receiver LAN reports 100,000 SSM channels, over and
// over, while a stream flows to a real receiver there: R3 takes that
// host's groups up to max-groups-per-host (1,000 here) and refuses the
// rest, counted; R1 upstream holds no more joins than that; the stream
// loses nothing, R3's adjacencies stay up, show status answers within
// 100 ms at p99 throughout, another receiver's join meanwhile is served
// within a second, and RSS stays small.
func TestHostileIGMPv3Flood(t *testing.T) {
	const igmp = "query-interval: 5s, query-response-interval: 1s, max-groups-per-host: 1000"
	l := startLab(t, pimLab(map[string]string{"r3": overcastPIM("10.255.0.2", igmp, "to-r1", "to-r2", "lan")}))
	r := startRecv(t, l, "rcv", "-g", G)
	c3 := api.NewClient(l.Socket("r3"))
	eventually(t, 10*time.Second, "rcv joined", func() string { return hasGroup(c3, "lan", G) })
	pimLabReady(t, l)
	time.Sleep(200 * time.Millisecond)
	const G2 = "239.1.1.2"
	sent := sendBackground(t, l, "src", "-g", G, "-count", "8000", "-rate", "1000")
	sent2 := sendBackground(t, l, "src", "-g", G2, "-p", "5002", "-count", "8000", "-rate", "1000")
	time.Sleep(time.Second)
	st0, err := c3.Status()
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := api.NewClient(l.Socket("r1")).PIMNeighbors()
	n3, _ := c3.PIMNeighbors()

	stopSampling := sampleStatus(c3)
	script := filepath.Join(t.TempDir(), "igmpflood.py")
	os.WriteFile(script, []byte(igmpFlood), 0o644)
	flood := make(chan string, 1)
	go func() {
		// 100,000 channels five times over, 5,000 reports (600,000
		// channels) a second.
		out, err := l.Exec("rcv", "/usr/bin/python3", script, "10.0.3.77", "10.0.1.10", "100000", "5", "5000")
		if err != nil {
			out += err.Error()
		}
		flood <- out
	}()
	time.Sleep(300 * time.Millisecond)
	r2 := startRecv(t, l, "rcv", "-g", G2, "-p", "5002") // a real host's join in the middle of the flood
	t.Logf("flood (channels, reports, seconds): %s", strings.TrimSpace(<-flood))
	time.Sleep(time.Second)
	ms := stopSampling()
	p99 := ms[len(ms)*99/100]
	t.Logf("show status during the flood: %d calls, median %.1f ms, p99 %.1f ms, max %.1f ms", len(ms), ms[len(ms)/2], p99, ms[len(ms)-1])
	if p99 > 100 {
		t.Errorf("show status p99 %.1f ms during the flood, want under 100 ms", p99)
	}
	s := ifStats(t, c3, "lan")
	gs, _ := c3.IGMPGroups()
	flooded := 0
	for _, g := range gs {
		if strings.HasPrefix(g.Group, "232.") {
			flooded++
		}
	}
	t.Logf("R3 lan: %d v3 reports, %d flooded groups kept, %d refused at the host's limit", s.RxV3Reports, flooded, s.HostLimit)
	if flooded > 1000 || s.HostLimit < 99_000 {
		t.Errorf("R3 kept %d of the host's groups (limit 1,000) and refused %d (want the other 99,000 at least)", flooded, s.HostLimit)
	}
	js1, _ := api.NewClient(l.Socket("r1")).PIMJoins()
	ssm := 0
	for _, j := range js1 {
		if strings.HasPrefix(j.Group, "232.") {
			ssm++
		}
	}
	if ssm > 1000 {
		t.Errorf("R1 holds %d SSM joins from the flood, more than R3's limit of 1,000", ssm)
	}
	st1, _ := c3.Status()
	rss := vmRSS(st1.PID)
	t.Logf("R3: RSS %.1f MB, %d kernel routes; R1: %d SSM joins", float64(rss)/(1<<20), st1.Routes, ssm)
	if rss > 100<<20 {
		t.Errorf("R3 RSS %.1f MB after the flood", float64(rss)/(1<<20))
	}
	adjacenciesKept(t, l, "r1", n1)
	adjacenciesKept(t, l, "r3", n3)
	if st1.PID != st0.PID {
		t.Errorf("R3 restarted: pid %d -> %d", st0.PID, st1.PID)
	}

	sent(15 * time.Second)
	sent2(15 * time.Second)
	time.Sleep(200 * time.Millisecond)
	s2 := r2.stop(t)
	t.Logf("the join during the flood: first packet %v after it", time.Duration(s2.FirstAfterJoin))
	if p, _, _ := s2.Total(); p == 0 || time.Duration(s2.FirstAfterJoin) > time.Second {
		t.Errorf("the join during the flood: %d packets, first after %v (want within 1 s)", p, s2.FirstAfterJoin)
	}
	st := r.stop(t)
	p, lost, dups := st.Total()
	fwd := uint64(0)
	if m, ok := mroute(t, l, "r3", "10.0.1.10", G); ok {
		fwd = m.Packets
	}
	t.Logf("the established stream through the flood: %d packets, %d lost, %d duplicates of 8000 (R3's kernel forwarded %d)", p, lost, dups, fwd)
	wholeAfterStart(t, st, 8000, "the IGMPv3 flood")
}
