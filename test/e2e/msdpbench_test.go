package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
	"overcast/internal/tools/mcast"
)

// msdpDomains brings msdpLab up with one implementation on every router.
func msdpDomains(b *testing.B, impl string) (*lab.Lab, map[string]*frr) {
	over := map[string]string(nil)
	if impl == "frr" {
		over = map[string]string{"a1": "", "rpa": "", "rpb": "", "b1": ""}
	}
	l := startLab(b, msdpLab(over))
	frrs := map[string]*frr{}
	if impl == "frr" {
		for _, n := range []string{"a1", "rpa", "rpb", "b1"} {
			frrs[n] = startFRR(b, l, n, frrMSDP[n])
		}
	}
	if _, err := l.Exec("src", "ethtool", "-K", "eth0", "tx", "off"); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		up := false
		if f := frrs["rpb"]; f != nil {
			out, _ := f.vtysh("show ip msdp peer")
			up = strings.Contains(out, "established")
		} else if ps, err := api.NewClient(l.Socket("rpb")).MSDPPeers(); err == nil && len(ps) == 1 {
			up = ps[0].State == "Established"
		}
		if up {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: MSDP between the RPs never came up", impl)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // PIM adjacencies everywhere
	return l, frrs
}

// BenchmarkMSDPSourceStartVsFRR: seed 002's two domains, all FRR (pimd
// with ip msdp peer) then all Overcast, in one run. 10 times, the
// receiver behind RP-B joins a new group and, once joined, the source in
// domain A starts sending it 200 packets at 1,000 pps: the (S,G) is new
// to both domains each time (register, SA, join across the border). It
// prints, per implementation, the median time from the first packet sent
// to the first received and the median number lost of the first 100.
func BenchmarkMSDPSourceStartVsFRR(b *testing.B) {
	const trials = 10
	for _, impl := range []string{"frr", "overcast"} {
		b.Run(impl, func(b *testing.B) {
			for b.Loop() {
			}
			l, _ := msdpDomains(b, impl)
			var firstMS, lost100 []float64
			for i := range trials {
				g := fmt.Sprintf("239.4.0.%d", i+1)
				var out strings.Builder
				c := l.Command("rcv", bin, "recv", "-json", "-q", "-g", g, "-duration", "4s")
				c.Stdout = &out
				if err := c.Start(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(2500 * time.Millisecond) // IGMP report and (*,G) join up to RP-B
				if err := sendErr(l, "src", "-g", g, "-count", "200", "-rate", "1000", "-ttl", "32"); err != nil {
					b.Fatal(err)
				}
				c.Wait()
				var st mcast.Stats
				if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
					b.Fatalf("recv output %q: %v", out.String(), err)
				}
				if len(st.Streams) == 0 {
					firstMS, lost100 = append(firstMS, 200), append(lost100, 100)
					continue
				}
				s := st.Streams[0]
				// Sent at 1 ms apart: the first packet received left the
				// source FirstSeq ms after the first one; every packet of
				// the first 100 not received is lost.
				lost := min(s.FirstSeq, 100)
				for _, m := range s.MissingSample {
					if m < 100 {
						lost++
					}
				}
				firstMS = append(firstMS, float64(s.FirstSeq)+float64(s.LatencyMS))
				lost100 = append(lost100, float64(lost))
			}
			b.ReportMetric(median(firstMS), "ms-to-first-packet")
			b.ReportMetric(median(lost100), "lost-of-first-100")
			fmt.Printf("%s: cross-domain source start over %d new (S,G): median %.1f ms to the first packet, median %.0f lost of the first 100 (all: %v)\n",
				impl, trials, median(firstMS), median(lost100), lost100)
		})
	}
}

// saFeeder is a small MSDP speaker in Python: it connects from 10.9.0.1
// to 10.9.0.2 (the lower address connects), sends n SAs originated by
// itself (so peer-RPF accepts them by rule i) in full 255-entry messages,
// re-advertises them every 60 s, keeps the session up with keepalives
// and reads whatever the RP sends.
const saFeeder = `
import socket, struct, sys, threading, time
n = int(sys.argv[1])
s = socket.create_connection(("10.9.0.2", 639), source_address=("10.9.0.1", 0))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rp = socket.inet_aton("10.9.0.1")
def drain():
    while s.recv(65536):
        pass
threading.Thread(target=drain, daemon=True).start()
msgs = []
batch = []
for i in range(n):
    g = bytes([233, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    src = bytes([198, 18, (i >> 8) & 255, i & 255])
    batch.append(b"\0\0\0\x20" + g + src)
    if len(batch) == 255 or i == n - 1:
        body = b"".join(batch)
        msgs.append(struct.pack("!BHB", 1, 8 + len(body), len(batch)) + rp + body)
        batch = []
blob = b"".join(msgs)
s.sendall(b"\x04\x00\x03")
last = 0
while True:
    if time.time() - last >= 60:
        s.sendall(blob)
        last = time.time()
    s.sendall(b"\x04\x00\x03")
    time.sleep(5)
`

// saScaleLab: the feeder host and one RP on a link.
const saScaleLab = `name: sascale
nodes:
  - name: feeder
  - name: rp
    kind: router
    loopback: [10.255.0.1/32]
%s
links:
  - {a: "feeder:eth0", a-addr: 10.9.0.1/24, b: "rp:eth0", b-addr: 10.9.0.2/24}
`

var frrSACount = regexp.MustCompile(`"saCount":\s*(\d+)`)

// BenchmarkMSDPSACacheVsFRR: one RP, FRR's pimd then Overcast, fed
// 10,000 and then 100,000 SAs by a peer: the time until the RP's cache
// holds them all, its resident memory then, and its CPU over the next 60
// s (one re-advertisement of every SA). SA_SCALE=10000 runs one size.
func BenchmarkMSDPSACacheVsFRR(b *testing.B) {
	sizes := []int{10000, 100000}
	if v, err := strconv.Atoi(os.Getenv("SA_SCALE")); err == nil && v > 0 {
		sizes = []int{v}
	}
	for _, n := range sizes {
		for _, impl := range []string{"frr", "overcast"} {
			b.Run(fmt.Sprintf("%s/%d", impl, n), func(b *testing.B) {
				for b.Loop() {
				}
				node := "    overcast: |\n      pim:\n        rp: [{address: 10.255.0.1}]\n      msdp:\n        source: 10.9.0.2\n        peers: [{address: 10.9.0.1}]\n      interfaces:\n        - {name: eth0, pim: true}\n"
				if impl == "frr" {
					node = ""
				}
				l := startLab(b, fmt.Sprintf(saScaleLab, node))
				var f *frr
				names := []string{"overcast"}
				if impl == "frr" {
					f = startFRR(b, l, "rp", "interface lo\n ip pim\ninterface eth0\n ip pim\nip pim rp 10.255.0.1 224.0.0.0/4\nip msdp peer 10.9.0.1 source 10.9.0.2\n")
					names = []string{"pimd", "zebra"}
					time.Sleep(2 * time.Second)
				}
				count := func() int {
					if f != nil {
						out, _ := f.vtysh("show ip msdp peer 10.9.0.1 json")
						if m := frrSACount.FindStringSubmatch(out); m != nil {
							v, _ := strconv.Atoi(m[1])
							return v
						}
						return 0
					}
					ps, err := api.NewClient(l.Socket("rp")).MSDPPeers()
					if err != nil || len(ps) == 0 {
						return 0
					}
					return ps[0].SALearned
				}
				feeder := l.Command("feeder", "python3", "-c", saFeeder, strconv.Itoa(n))
				if err := feeder.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { feeder.Process.Kill(); feeder.Wait() }()
				start := time.Now()
				for count() < n {
					if time.Since(start) > 5*time.Minute {
						b.Fatalf("%s: %d of %d SAs after 5 min", impl, count(), n)
					}
					time.Sleep(50 * time.Millisecond)
				}
				fill := time.Since(start)
				before := daemonStats(b, l, "rp", names...)
				time.Sleep(60 * time.Second)
				after := daemonStats(b, l, "rp", names...)
				rss, anon, cpu := 0, 0, 0
				for _, nm := range names {
					rss += after[nm].rssKB
					anon += after[nm].anonKB
					cpu += after[nm].cpuTicks - before[nm].cpuTicks
				}
				if got := count(); got < n {
					b.Errorf("%s: cache fell to %d of %d during the steady state", impl, got, n)
				}
				b.ReportMetric(fill.Seconds(), "s-to-fill")
				b.ReportMetric(float64(rss)/1024, "MB-RSS")
				b.ReportMetric(float64(anon)/1024, "MB-anon")
				b.ReportMetric(float64(cpu)/100, "cpu-s/min")
				fmt.Printf("%s: %d SAs: cache full after %.2f s, RSS %.1f MB of which anonymous %.1f MB (%s), CPU %.2f s over the next minute\n",
					impl, n, fill.Seconds(), float64(rss)/1024, float64(anon)/1024, strings.Join(names, "+"), float64(cpu)/100)
			})
		}
	}
}
