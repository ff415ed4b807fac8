package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// ErrUnavailable is what a handler returns when the daemon cannot answer
// (it is stopping); the client sees 503.
var ErrUnavailable = errors.New("the daemon is shutting down: try again once it has restarted")

// BadRequest marks a handler error as the caller's (400).
type BadRequest struct{ Err error }

func (e BadRequest) Error() string { return e.Err.Error() }

func serve(h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := h(r.PathValue("arg"))
		var bad BadRequest
		switch {
		case errors.As(err, &bad):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		b, err := Marshal(out)
		if err != nil {
			http.Error(w, "encoding the answer: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Overcast-Schema-Version", strconv.Itoa(SchemaVersion))
		w.Write(append(b, '\n'))
	}
}

// serveBody passes an action its request body (up to 16 MB) as the argument.
func serveBody(h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		serve(func(string) (any, error) { return h(string(b)) })(w, r)
	}
}

// Serve listens on a unix socket at path and serves the handlers (by
// view path) until ctx ends.
func Serve(ctx context.Context, path string, handlers map[string]Handler) error {
	l, err := Listen(path)
	if err != nil {
		return err
	}
	return ServeOn(ctx, l, path, handlers)
}

// Listen takes the API socket at path (a stale one is replaced).
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A stale socket from a crashed daemon; a live one would answer.
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another daemon is listening", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	os.Chmod(path, 0o660)
	return l, nil
}

// ServeOn serves the handlers on l until ctx ends, then removes path.
func ServeOn(ctx context.Context, l net.Listener, path string, handlers map[string]Handler) error {
	mux := http.NewServeMux()
	served := map[string]bool{}
	for _, v := range Views {
		h := handlers[v.Path]
		p := v.Path
		if v.Arg != "" {
			p += "/{arg}" // a view may be served with and without its argument (msdp peer [ADDR])
		}
		if h == nil || served[p] {
			continue // two views may share a path (mroute, mroute count)
		}
		served[p] = true
		mux.HandleFunc("GET "+p, serve(h))
	}
	for _, p := range Actions {
		if h := handlers[p]; h != nil {
			mux.HandleFunc("POST "+p+"/{arg}", serve(h))
			mux.HandleFunc("POST "+p, serveBody(h))
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		// Answers in flight (a stop's, a restart's) are written first.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		os.Remove(path)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
