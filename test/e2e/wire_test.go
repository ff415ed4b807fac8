package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/api"
)

// Every IGMP packet Overcast sends (v3 and v2 general queries, group-specific
// and group-and-source-specific queries) decodes in tshark with no warnings.
func TestTsharkDecodesOurQueries(t *testing.T) {
	l := startLab(t, strings.Replace(routerLab("query-interval: 2s, query-response-interval: 1s"),
		"        - name: lan2\n          igmp: {query-interval: 2s, query-response-interval: 1s}",
		"        - name: lan2\n          igmp: {version: 2, query-interval: 2s, query-response-interval: 1s}", 1))
	c := api.NewClient(l.Socket("r1"))
	pcap := filepath.Join(t.TempDir(), "r1.pcap")
	cap := l.Command("r1", "tcpdump", "-i", "any", "-U", "-w", pcap, "igmp")
	if err := cap.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let tcpdump attach
	// Group-specific (leave of an ASM group) and group-and-source queries (block of a source).
	r1 := startRecv(t, l, "rcv1", "-g", G)
	r2 := startRecv(t, l, "rcv1", "-g", "232.1.1.1", "-s", "10.0.1.10", "-p", "5002")
	r3 := startRecv(t, l, "rcv2", "-g", G) // on the IGMPv2 LAN
	eventually(t, 5*time.Second, "joins", func() string {
		if s := hasGroup(c, "lan1", "232.1.1.1"); s != "" {
			return s
		}
		return hasGroup(c, "lan2", G)
	})
	r1.stop(t)
	r2.stop(t)
	r3.stop(t)
	time.Sleep(4 * time.Second) // retransmissions and a couple of general queries
	cap.Process.Signal(syscall.SIGTERM)
	cap.Wait()

	fields, err := exec.Command("tshark", "-Q", "-r", pcap, "-Y", "igmp && ip.src == 10.0.0.0/16 && igmp.type == 0x11",
		"-T", "fields", "-e", "ip.src", "-e", "igmp.version", "-e", "igmp.maddr", "-e", "igmp.num_src").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, fields)
	}
	var v3General, v2General, groupSpecific, sourceSpecific int
	for _, line := range strings.Split(strings.TrimSpace(string(fields)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 4 || !strings.HasSuffix(f[0], ".1") {
			continue // only r1's addresses end in .1
		}
		switch {
		case f[2] == "0.0.0.0" && f[1] == "3":
			v3General++
		case f[2] == "0.0.0.0" && f[1] == "2":
			v2General++
		case f[3] != "" && f[3] != "0":
			sourceSpecific++
		default:
			groupSpecific++
		}
	}
	t.Logf("queries seen: v3 general %d, v2 general %d, group-specific %d, group-and-source %d", v3General, v2General, groupSpecific, sourceSpecific)
	if v3General == 0 || v2General == 0 || groupSpecific == 0 || sourceSpecific == 0 {
		t.Fatalf("missing query kinds in capture:\n%s", fields)
	}
	expert, err := exec.Command("tshark", "-Q", "-r", pcap, "-z", "expert,note").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, expert)
	}
	if s := string(expert); strings.Contains(s, "Malformed") || strings.Contains(s, "Warns") || strings.Contains(s, "Errors") || strings.Contains(strings.ToLower(s), "checksum") {
		t.Fatalf("tshark reports problems:\n%s", s)
	}
}

// A burst of malformed IGMP from a host leaves the daemon up and its group table intact.
func TestMalformedBurst(t *testing.T) {
	l := startLab(t, routerLab(""))
	c := api.NewClient(l.Socket("r1"))
	r := startRecv(t, l, "rcv1", "-g", G)
	defer r.stop(t)
	eventually(t, 5*time.Second, "join", func() string { return hasGroup(c, "lan1", G) })
	script := filepath.Join(t.TempDir(), "burst.py")
	os.WriteFile(script, []byte(malformedScript), 0o644)
	out, err := l.Exec("rcv1", "/usr/bin/python3", script, "10.0.2.10")
	if err != nil {
		t.Fatalf("scapy: %v\n%s", err, out)
	}
	var sent int
	fmt.Sscan(strings.TrimSpace(out), &sent)
	eventually(t, 3*time.Second, "malformed counted", func() string {
		st := ifStats(t, c, "lan1")
		if st.Malformed < uint64(sent) {
			return fmt.Sprintf("malformed %d of %d sent; %+v", st.Malformed, sent, st)
		}
		return ""
	})
	if s := hasGroup(c, "lan1", G); s != "" {
		t.Fatalf("group lost: %s", s)
	}
	st := ifStats(t, c, "lan1")
	if st.BadChecksum == 0 || st.Truncated == 0 {
		t.Fatalf("kinds not counted: %+v", st)
	}
	if _, err := c.Status(); err != nil {
		t.Fatalf("daemon gone: %v", err)
	}
}

// The scapy script prints how many bad packets it sent. Each carries Router
// Alert and goes to 224.0.0.22 like a real report.
const malformedScript = `
import struct, sys
from scapy.all import Ether, IP, Raw, sendp, conf
from scapy.layers.inet import IPOption_Router_Alert
conf.verb = 0
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def fix(b):
    b = bytearray(b); b[2:4] = b'\0\0'; b[2:4] = struct.pack('!H', csum(bytes(b))); return bytes(b)
g = bytes([239,1,1,1])
good_rec = bytes([4,0,0,0]) + g                                   # TO_EX {}
pkts = []
pkts.append(fix(bytes([0x22,0,0,0,0,0,0,1]) + good_rec)[:10])     # truncated inside the record
bad = bytearray(fix(bytes([0x22,0,0,0,0,0,0,1]) + bytes([3,0,0,0]) + g)); bad[3] ^= 0x55
pkts.append(bytes(bad))                                           # TO_IN {} with a bad checksum: must not leave
pkts.append(fix(bytes([0x22,0,0,0,0,0,0xff,0xff]) + good_rec))   # 65535 records
pkts.append(fix(bytes([0x22,0,0,0,0,0,0,1]) + bytes([2,0,0xff,0xff]) + g))  # 65535 sources
pkts.append(fix(bytes([0x11,10,0,0,0,0,0,0,0])))                  # 9-byte query
pkts.append(fix(bytes([0x22,0,0,0,0,0,0,1]) + bytes([9,0,0,0]) + g))  # unknown record type
pkts.append(b'\x22')                                              # one byte
src = sys.argv[1]
n = 0
for _ in range(50):
    for p in pkts:
        sendp(Ether(dst='01:00:5e:00:00:16')/IP(src=src, dst='224.0.0.22', ttl=1, tos=0xc0, proto=2, options=[IPOption_Router_Alert()])/Raw(load=p), iface='eth0')
        n += 1
print(n)
`
