package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"overcast/internal/daemon"
)

// Under systemd (Type=notify, FileDescriptorStoreMax=, and
// OVERCAST_FDSTORE=1 in the unit: dist/overcast.service), a stop puts the
// routing socket and the handover in systemd's fd store instead of
// closing it; systemd gives both back to the next start (LISTEN_FDS), so
// `systemctl restart` loses no packet. On a plain `systemctl stop` systemd
// closes them: forwarding stops, the routes stay for the next start.

// sdNotify sends a state message to systemd with fds attached (nil when
// not run by systemd).
func sdNotify(msg string, fds ...int) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, []byte(msg), oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		return fmt.Errorf("sd_notify %q: %w", strings.SplitN(msg, "\n", 2)[0], err)
	}
	return nil
}

// fdStore says whether a stop should hand over through systemd's fd
// store: run by systemd with the store enabled for this service.
func fdStore() bool {
	return os.Getenv("NOTIFY_SOCKET") != "" && (os.Getenv("OVERCAST_FDSTORE") == "1" || os.Getenv("FDSTORE") != "")
}

// fdStoreNames are the store's entries.
const (
	fdNameRouting  = "overcast-mroute"
	fdNameHandover = "overcast-handover"
)

// storeHandover puts the routing socket and the handover in the store.
func storeHandover(routingFD int, h daemon.Handover) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	mfd, err := unix.MemfdCreate(fdNameHandover, unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd for the handover: %w", err)
	}
	defer unix.Close(mfd)
	if _, err := unix.Write(mfd, b); err != nil {
		return err
	}
	if err := sdNotify("FDSTORE=1\nFDNAME="+fdNameRouting, routingFD); err != nil {
		return err
	}
	return sdNotify("FDSTORE=1\nFDNAME="+fdNameHandover, mfd)
}

// takeStored reads what a predecessor left in the fd store (LISTEN_FDS
// for this process), removes it from the store, and returns it as a
// handover (nil: nothing stored).
func takeStored() (*handover, error) {
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); pid != os.Getpid() {
		return nil, nil
	}
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	var h handover
	var state []byte
	for i := range n {
		fd := 3 + i
		name := ""
		if i < len(names) {
			name = names[i]
		}
		switch name {
		case fdNameRouting:
			if h.RoutingFD == 0 {
				h.RoutingFD = fd
				continue
			}
		case fdNameHandover:
			if state == nil {
				f := os.NewFile(uintptr(fd), name)
				state, _ = io.ReadAll(io.NewSectionReader(f, 0, 1<<24))
				f.Close()
				continue
			}
		}
		unix.Close(fd) // not ours, or a duplicate
	}
	// Out of the store: the next stop stores this run's own.
	sdNotify("FDSTOREREMOVE=1\nFDNAME=" + fdNameRouting)
	sdNotify("FDSTOREREMOVE=1\nFDNAME=" + fdNameHandover)
	if h.RoutingFD == 0 {
		return nil, nil
	}
	if state != nil {
		if err := json.Unmarshal(state, &h.State); err != nil {
			return nil, fmt.Errorf("the handover in systemd's fd store: %w (systemctl stop overcast empties the store; then start it afresh)", err)
		}
	}
	return &h, nil
}
