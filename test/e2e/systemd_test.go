package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"overcast/internal/api"
	"overcast/internal/lab"
)

// systemd is a real systemd (Debian's) running as PID 1 of its own PID
// and mount namespaces: units run as on a host, with their own fd stores.
type systemd struct {
	pid int // systemd's PID here
}

// bootScript starts systemd as PID 1 of new PID and mount namespaces.
// Nothing it does may reach the host (a systemd that boots its sysinit
// units cleans /tmp and applies sysctls): /run is its own tmpfs, with the
// host's network namespaces moved in; /tmp is read-only to it; its boot
// target pulls in nothing, and sysinit's units are masked besides.
const bootScript = `#!/bin/sh
set -e
hold=$(mktemp -d /root/.overcast-e2e-netns.XXXXXX)
mount --rbind /run/netns "$hold"
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /run/systemd/system /run/overcast
mount --move "$hold" /run/netns
rmdir "$hold" || true
mount --bind /tmp /tmp
mount -o remount,bind,ro /tmp
for u in /lib/systemd/system/sysinit.target.wants/* /lib/systemd/system/systemd-tmpfiles* /lib/systemd/system/systemd-sysctl.service /lib/systemd/system/systemd-sysusers.service /lib/systemd/system/systemd-remount-fs.service /lib/systemd/system/rescue.service /lib/systemd/system/emergency.service; do
  if [ -e "$u" ]; then ln -sf /dev/null "/run/systemd/system/$(basename "$u")"; fi
done
printf '[Unit]\nDescription=overcast e2e boot\nDefaultDependencies=no\n' > /run/systemd/system/overcast-e2e-boot.target
export container=overcast-e2e
exec /lib/systemd/systemd --system --log-target=console --unit=overcast-e2e-boot.target
`

// startSystemd boots systemd (bootScript). Network namespaces that exist
// now (a lab's) are visible to its units.
func startSystemd(t *testing.T) *systemd {
	t.Helper()
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Fatal("systemd is not installed (apt-get install systemd): ", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "boot.sh")
	os.WriteFile(script, []byte(bootScript), 0o755)
	logf, err := os.Create(filepath.Join(dir, "systemd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc", script)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sd := &systemd{}
	t.Cleanup(func() {
		if sd.pid > 0 {
			syscall.Kill(sd.pid, syscall.SIGKILL) // PID 1 of its namespace: everything in it goes
		}
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("--- systemd ---\n%s", tail(string(b), 4000))
		}
	})
	// A systemd that never answers could not boot on this machine (its
	// cgroups, say): the test cannot run here, and says so. One that
	// answers but is not running is a failure.
	answered := false
	for deadline := time.Now().Add(20 * time.Second); ; {
		if sd.pid == 0 {
			out, _ := exec.Command("pgrep", "-P", strconv.Itoa(cmd.Process.Pid)).Output()
			sd.pid, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		}
		state := "no systemd process"
		if sd.pid != 0 {
			out, err := sd.ctl("is-system-running")
			state = strings.TrimSpace(out)
			answered = answered || err == nil || state == "degraded" || state == "starting" || state == "maintenance"
			if state == "running" {
				return sd
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			if !answered {
				t.Skipf("systemd could not boot in a PID and mount namespace on this machine (%s); its log:\n%s", state, tail(string(b), 2000))
			}
			t.Fatalf("systemd is %q after 20 s, want running; its log:\n%s", state, tail(string(b), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// path is a path in systemd's mount namespace, seen from here.
func (sd *systemd) path(p string) string { return fmt.Sprintf("/proc/%d/root%s", sd.pid, p) }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ctl runs systemctl against this systemd.
func (sd *systemd) ctl(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(sd.pid), "-m", "-p", "systemctl", "--no-pager"}, args...)...).CombinedOutput()
	return string(out), err
}

func (sd *systemd) mustCtl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := sd.ctl(args...); err != nil {
		st, _ := sd.ctl("status", "overcast-e2e")
		j, _ := os.ReadFile(sd.path("/run/overcast/r2.log"))
		t.Fatalf("systemctl %v: %v\n%s\n%s\n%s", args, err, out, st, tail(string(j), 6000))
	}
}

// installUnit installs dist/overcast.service as overcast-e2e, with this
// test's binary and config, in a lab node's network namespace.
func (sd *systemd) installUnit(t *testing.T, l *lab.Lab, node, config string) {
	t.Helper()
	b, err := os.ReadFile("../../dist/overcast.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/overcast", bin)
	unit = strings.ReplaceAll(unit, "/etc/overcast.yaml", config)
	// In the lab node's namespace; nothing of the host's boot pulled in;
	// its output where the test can read it.
	unit = strings.Replace(unit, "[Unit]\n", "[Unit]\nDefaultDependencies=no\n", 1)
	unit = strings.Replace(unit, "[Service]\n", "[Service]\nNetworkNamespacePath=/run/netns/"+l.NS(node)+"\nStandardOutput=append:/run/overcast/"+node+".log\nStandardError=inherit\n", 1)
	if err := os.WriteFile(sd.path("/run/systemd/system/overcast-e2e.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	sd.mustCtl(t, "daemon-reload")
}

// The shipped unit under a real systemd: `systemctl restart` of the
// RP/last-hop router under a 1,000 pps stream loses no packet. The
// routing socket waits in systemd's fd store between the two processes,
// the generation IDs with it, so FRR's neighbour uptime never resets.
func TestSystemdRestartLosesNothing(t *testing.T) {
	needMrouting(t)
	l := startLab(t, pimLab(map[string]string{"r1": "", "r2": "", "r3": ""}))
	frrs := map[string]*frr{"r1": startFRR(t, l, "r1", frrSeed["r1"]), "r3": startFRR(t, l, "r3", frrSeed["r3"])}
	if _, err := l.Exec("src", "ethtool", "-K", "eth0", "tx", "off"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "r2.yaml")
	igmp := "igmp: {query-interval: 5s, query-response-interval: 1s}"
	os.WriteFile(cfg, []byte(fmt.Sprintf(`api-socket: /run/overcast/r2.sock
pim:
  rp: [{address: 10.255.0.2}]
interfaces:
  - {name: to-r1, pim: true, %[1]s}
  - {name: to-r3, pim: true, %[1]s}
  - {name: lan, pim: true, %[1]s}
`, igmp)), 0o644)
	sd := startSystemd(t)
	sock := sd.path("/run/overcast/r2.sock")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(sd.path("/run/overcast/r2.log"))
			t.Logf("--- r2 (systemd) log ---\n%s", tail(string(b), 8000))
		}
	})
	sd.installUnit(t, l, "r2", cfg)
	sd.mustCtl(t, "start", "overcast-e2e") // Type=notify: returns at READY=1
	c := api.NewClient(sock)
	st0, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 45*time.Second, "R2 holds FRR's R1", func() string {
		ns, err := c.PIMNeighbors()
		if err != nil {
			return err.Error()
		}
		for _, n := range ns {
			if n.Address == "10.1.12.1" && time.Duration(n.Expires) > 30*time.Second {
				return ""
			}
		}
		return fmt.Sprint(ns)
	})
	eventually(t, 40*time.Second, "FRR R1 holds R2", func() string {
		if _, err := frrs["r1"].frrNeighborUptime("to-r2", "10.1.12.2"); err != nil {
			return err.Error()
		}
		return ""
	})

	rcv := startRecv(t, l, "rcv2", "-g", G)
	time.Sleep(3 * time.Second)
	wait := sendBackground(t, l, "src", "-g", G, "-count", "12000", "-rate", "1000")
	time.Sleep(3 * time.Second)
	streamOnSPT(t, c)
	up0, err := frrs["r1"].frrNeighborUptime("to-r2", "10.1.12.2")
	if err != nil {
		t.Fatal(err)
	}
	at0 := time.Now()
	for i := range 2 {
		sd.mustCtl(t, "restart", "overcast-e2e")
		st, err := c.Status()
		if err != nil || st.Handovers != uint64(i+1) || st.AdoptedRoutes < 1 || st.PID == st0.PID {
			t.Errorf("after systemctl restart %d: pid %d (was %d), handovers %d, %d routes taken over (%v); want a new process that took the socket from the store", i+1, st.PID, st0.PID, st.Handovers, st.AdoptedRoutes, err)
		}
		st0 = st
		time.Sleep(2 * time.Second)
	}
	wait(20 * time.Second)
	time.Sleep(300 * time.Millisecond)
	wholeAfterStart(t, rcv.stop(t), 12000, "two systemctl restarts")
	up1, err := frrs["r1"].frrNeighborUptime("to-r2", "10.1.12.2")
	if err != nil {
		t.Fatal(err)
	}
	if want := up0 + time.Since(at0) - 2*time.Second; up1 < want {
		t.Errorf("FRR's uptime for R2 went %s -> %s over %s: reset by the restart", up0, up1, time.Since(at0).Round(time.Second))
	}
	// systemctl stop: the store is emptied, the socket closes, and the
	// kernel keeps the routes (not forwarded) for the next start.
	sd.mustCtl(t, "stop", "overcast-e2e")
	if out, _ := l.Exec("r2", "cat", "/proc/net/ip_mr_cache"); strings.Count(out, "\n") < 2 {
		t.Errorf("after systemctl stop the kernel's table is empty:\n%s", out)
	}
}
