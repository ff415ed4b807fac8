package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Backend answers API requests; the daemon implements it by running each
// call on its event loop.
type Backend interface {
	IGMPGroups() []IGMPGroup
	IGMPInterfaces() []IGMPInterface
	MRoutes() []MRoute
	Status() Status
	PIMNeighbors() []PIMNeighbor
	PIMInterfaces() []PIMInterface
	PIMRPs() []PIMRP
	PIMJoins() []PIMJoin
	PIMAsserts() []PIMAssert
	RPF(addr string) (RPF, error)
}

// Serve listens on a unix socket at path and serves until ctx ends.
func Serve(ctx context.Context, path string, b Backend) error {
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A stale socket from a crashed daemon; a live one would answer.
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("api socket %s: another daemon is listening", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	os.Chmod(path, 0o660)
	mux := http.NewServeMux()
	handle := func(p string, f func() any) {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(f())
		})
	}
	handle("/v1/igmp/groups", func() any { return b.IGMPGroups() })
	handle("/v1/igmp/interfaces", func() any { return b.IGMPInterfaces() })
	handle("/v1/mroute", func() any { return b.MRoutes() })
	handle("/v1/status", func() any { return b.Status() })
	handle("/v1/pim/neighbors", func() any { return b.PIMNeighbors() })
	handle("/v1/pim/interfaces", func() any { return b.PIMInterfaces() })
	handle("/v1/pim/rp", func() any { return b.PIMRPs() })
	handle("/v1/pim/join", func() any { return b.PIMJoins() })
	handle("/v1/pim/assert", func() any { return b.PIMAsserts() })
	mux.HandleFunc("GET /v1/rpf/{addr}", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.RPF(r.PathValue("addr"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
		os.Remove(path)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
