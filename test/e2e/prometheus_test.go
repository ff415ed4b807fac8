package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// prometheus runs Debian's Prometheus in a node's namespace, scraping
// the daemon's /metrics there every second, and answers PromQL.
type promServer struct {
	l    *lab.Lab
	node string
	cmd  *exec.Cmd
}

func startPrometheus(t *testing.T, l *lab.Lab, node, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: overcast\n    static_configs:\n      - targets: [%q]\n", target)), 0o644)
	cmd := l.Command(node, "prometheus", "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:9090", "--log.level=warn")
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("prometheus (Debian package prometheus): %v", err)
	}
	p := &promServer{l: l, node: node, cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("--- prometheus log ---\n%s", b)
		}
	})
	eventually(t, 20*time.Second, "prometheus scraping overcast", func() string {
		v, err := p.query(`up{job="overcast"}`)
		if err != nil || v != 1 {
			return fmt.Sprintf("up = %v (%v)", v, err)
		}
		return ""
	})
	return p
}

// query runs an instant PromQL query and returns its one value.
func (p *promServer) query(q string) (float64, error) {
	out, err := p.l.Exec(p.node, "curl", "-sf", "http://127.0.0.1:9090/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value []any `json:"value"`
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, err
	}
	if r.Status != "success" || len(r.Data.Result) != 1 || len(r.Data.Result[0].Value) != 2 {
		return 0, fmt.Errorf("answer %s", out)
	}
	return strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
}

// paced sends n UDP datagrams from a node at rate per second, paced to a
// clock, and returns the rate it kept.
const paced = `
import socket, sys, time
dst, rate, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.time()
for i in range(n):
    d = t0 + i / rate - time.time()
    if d > 0:
        time.sleep(d)
    u.sendto(b"m" * 100, (dst, 7000))
print(n / (time.time() - t0))
`

// TestPrometheusScrapesMirrorRates: a real Prometheus scrapes a daemon's
// /metrics (a mirror-only daemon: it runs on any kernel), and PromQL's
// rate of the tap flow's copies is the sender's rate within 10%.
func TestPrometheusScrapesMirrorRates(t *testing.T) {
	spec := strings.Replace(seed004, "      log-level: debug\n      mirror:", "      log-level: debug\n      metrics: 127.0.0.1:9477\n      mirror:", 1)
	if spec == seed004 {
		t.Fatal("test bug: seed004's layout changed")
	}
	l := startLab(t, spec)
	p := startPrometheus(t, l, "host1", "127.0.0.1:9477")
	done := make(chan string, 1)
	go func() {
		out, err := l.Exec("vm1", "python3", "-c", paced, "198.51.100.8", "200", "3000") // 15 s
		if err != nil {
			out = "error: " + err.Error() + " " + out
		}
		done <- out
	}()
	time.Sleep(11 * time.Second)
	got, err := p.query(`sum(rate(overcast_mirror_packets_total[8s]))`)
	sent := <-done
	rate, perr := strconv.ParseFloat(strings.TrimSpace(sent), 64)
	if err != nil || perr != nil {
		t.Fatalf("query: %v; sender: %q", err, sent)
	}
	if got < 0.9*rate || got > 1.1*rate {
		t.Fatalf("PromQL rate of the flow's copies %.1f/s, the sender kept %.1f/s: want within 10%%", got, rate)
	}
	t.Logf("PromQL rate(overcast_mirror_packets_total) %.1f/s; sender %.1f/s", got, rate)
	if v, err := p.query(`overcast_build_info`); err != nil || v != 1 {
		t.Errorf("overcast_build_info: %v %v", v, err)
	}
}

// TestPrometheusScrapesRouterRates: Prometheus scrapes a lab router, and
// PromQL's rate of a stream's (S,G) packets is the sender's rate within
// 10%; the outgoing interfaces and IGMP's counters are there too.
func TestPrometheusScrapesRouterRates(t *testing.T) {
	needMrouting(t)
	spec := strings.Replace(routerLab(""), "    overcast: |\n", "    overcast: |\n      metrics: 127.0.0.1:9477\n", 1)
	if spec == routerLab("") {
		t.Fatal("test bug: the forwarding lab's layout changed")
	}
	l := startLab(t, spec)
	p := startPrometheus(t, l, "r1", "127.0.0.1:9477")
	r := startRecv(t, l, "rcv1", "-g", G)
	c := api.NewClient(l.Socket("r1"))
	eventually(t, 5*time.Second, "rcv1 joined", func() string { return hasGroup(c, "lan1", G) })
	wait := sendBackground(t, l, "src", "-g", G, "-rate", "200", "-count", "3000", "-ttl", "8")
	time.Sleep(11 * time.Second)
	got, err := p.query(`sum(rate(overcast_mroute_packets_total{group="` + G + `"}[8s]))`)
	if err != nil {
		t.Fatal(err)
	}
	if got < 180 || got > 220 {
		t.Fatalf("PromQL rate of (S,%s) %.1f/s; the sender sends 200/s: want within 10%%", G, got)
	}
	if v, err := p.query(`sum(overcast_mroute_outgoing_interfaces{group="` + G + `"})`); err != nil || v != 1 {
		t.Errorf("outgoing interfaces: %v %v", v, err)
	}
	if v, err := p.query(`sum(overcast_igmp_received_total{interface="lan1"})`); err != nil || v < 1 {
		t.Errorf("IGMP messages received on lan1: %v %v", v, err)
	}
	if v, err := p.query(`overcast_join_to_first_packet_seconds_count`); err != nil || v < 1 {
		t.Errorf("join-to-first-packet observations: %v %v", v, err)
	}
	wait(20 * time.Second)
	r.stop(t)
	t.Logf("PromQL rate of the stream %.1f/s (sender 200/s)", got)
}
