package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"overcast/internal/api"
	"overcast/internal/daemon"
	"overcast/internal/dataplane/linuxmr"
)

// A planned restart execs the successor in this process (the PID stays,
// so systemd and the lab see the same daemon) with the routing socket
// left open across the exec and the rest of the handover in the
// environment. The kernel forwards throughout.

// handoverEnv carries the handover to the successor.
const handoverEnv = "OVERCAST_HANDOVER"

type handover struct {
	RoutingFD int             `json:"routing_fd"`
	State     daemon.Handover `json:"state"`
}

// takeHandover reads (and removes from the environment) what a
// predecessor handed over; nil for a plain start.
func takeHandover() (*handover, error) {
	v, ok := os.LookupEnv(handoverEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(handoverEnv)
	var h handover
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return nil, fmt.Errorf("%s: %w (it is set by overcast restart only; unset it to start afresh)", handoverEnv, err)
	}
	return &h, nil
}

// checkSuccessor runs the successor with --version: a binary that cannot
// run is refused while the running daemon still can keep running.
func checkSuccessor(bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %v: %s (give a working overcast binary: overcast restart --binary PATH)", bin, err, strings.TrimSpace(string(out)))
	}
	if !strings.HasPrefix(string(out), "overcast ") {
		return fmt.Errorf("%s --version printed %q: not an overcast binary", bin, strings.TrimSpace(string(out)))
	}
	return nil
}

// execSuccessor replaces this process with the successor; it returns only
// if the exec failed.
func execSuccessor(bin string, h handover) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	env := append(os.Environ(), handoverEnv+"="+string(b))
	args := append([]string{bin}, os.Args[1:]...)
	return fmt.Errorf("exec %s: %w", bin, syscall.Exec(bin, args, env))
}

// runRestart is overcast restart: the daemon hands over to a successor
// (its own binary, or --binary PATH: an upgrade) without stopping
// forwarding, and this waits until the successor answers.
func runRestart(args []string) error {
	fs := flag.NewFlagSet("restart", flag.ExitOnError)
	df := addDaemonFlags(fs)
	bin := fs.String("binary", "", "the successor binary (default: the one the daemon runs; give the new one to upgrade)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the successor to answer")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("restart: unexpected arguments %q: overcast restart [--binary PATH] [--socket PATH]", fs.Args())
	}
	if *bin != "" && !strings.HasPrefix(*bin, "/") {
		abs, err := exec.LookPath(*bin)
		if err != nil {
			return fmt.Errorf("restart --binary %s: %w", *bin, err)
		}
		if abs, err = filepath.Abs(abs); err == nil {
			*bin = abs
		}
	}
	cl, err := df.client()
	if err != nil {
		return err
	}
	before, err := cl.Status()
	if err != nil {
		return err
	}
	start := time.Now()
	var lc api.Lifecycle
	if err := cl.PostJSON(api.PathRestart, api.RestartRequest{Binary: *bin}, &lc); err != nil {
		return err
	}
	var after api.Status
	for {
		after, err = cl.Status()
		if err == nil && after.Handovers > before.Handovers {
			break
		}
		if time.Since(start) > *wait {
			return fmt.Errorf("restart: the successor did not answer within %s (last: %v); see the daemon's log", *wait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	if *asJSON {
		return printJSON(struct {
			api.Lifecycle
			Took    api.Duration `json:"took"`
			Adopted int          `json:"adopted_routes"`
			PID     int          `json:"pid"`
			Version string       `json:"version"`
		}{lc, api.Duration(took), after.AdoptedRoutes, after.PID, after.Version})
	}
	fmt.Printf("restarted: %s; the successor (pid %d, %s) answered after %s and took over %d kernel routes\n",
		lc.Detail, after.PID, after.Version, took.Round(time.Millisecond), after.AdoptedRoutes)
	return nil
}

// runFlush is overcast flush: the kernel's table a stopped router left,
// removed (another router cannot add its VIFs over them).
func runFlush(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("flush: unexpected arguments %q: overcast flush (in the router's network namespace)", args)
	}
	vifs, routes, err := linuxmr.FlushLeft()
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	fmt.Printf("flushed: %d VIFs and %d routes removed from the kernel's multicast table\n", vifs, routes)
	return nil
}

// runStop is overcast stop [--flush]: PIM says goodbye and the daemon
// exits; the kernel's routes stay for the next start unless --flush.
func runStop(args []string) error {
	fs := flag.NewFlagSet("stop", flag.ExitOnError)
	df := addDaemonFlags(fs)
	flush := fs.Bool("flush", false, "remove the kernel's multicast routes and VIFs too (by default they stay, and the next start resumes them)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("stop: unexpected arguments %q: overcast stop [--flush] [--socket PATH]", fs.Args())
	}
	cl, err := df.client()
	if err != nil {
		return err
	}
	var lc api.Lifecycle
	if err := cl.PostJSON(api.PathStop, api.StopRequest{Flush: *flush}, &lc); err != nil {
		return err
	}
	start := time.Now()
	for {
		if _, err := cl.Status(); err != nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			return errors.New("stop: the daemon still answers after 10 s; see its log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("stopped: " + lc.Detail)
	return nil
}
