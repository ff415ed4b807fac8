// Package etcdstore finds overlay peers through etcd: each node puts its
// underlay address under a prefix with a lease it keeps alive, and
// watches the prefix. A node that dies stops renewing; when its lease
// expires its key goes, and every other node drops it as a peer. A node
// that stops cleanly revokes its lease, so it goes at once.
package etcdstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config is where and how a node registers.
type Config struct {
	Endpoints []string
	Prefix    string
	TTL       time.Duration
	Self      netip.AddrPort
}

// Update receives every node listed (nil: only the state changed) and the
// store's state ("up", or what is wrong).
type Update func(peers []netip.AddrPort, state string)

type store struct {
	cfg    Config
	log    *slog.Logger
	update Update
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	client *clientv3.Client
	lease  clientv3.LeaseID
}

// Start registers cfg.Self and reports the nodes listed until closed,
// reconnecting when etcd is unreachable. It returns at once.
func Start(cfg Config, log *slog.Logger, update Update) (io.Closer, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("etcd: no endpoints")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &store{cfg: cfg, log: log, update: update, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx)
	return s, nil
}

func (s *store) key() string { return s.cfg.Prefix + s.cfg.Self.String() }

func (s *store) run(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		s.update(nil, "reconnecting: "+err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// session is one registration: lease, key, list, watch; it returns when
// any of them fails.
func (s *store) session(ctx context.Context) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: s.cfg.Endpoints, DialTimeout: 2 * time.Second, Logger: nil})
	if err != nil {
		return err
	}
	defer c.Close()
	ttl := int64(max(s.cfg.TTL/time.Second, 2))
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	lease, err := c.Grant(rctx, ttl)
	rcancel()
	if err != nil {
		return fmt.Errorf("etcd lease: %w", err)
	}
	s.mu.Lock()
	s.client, s.lease = c, lease.ID
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.client = nil
		s.mu.Unlock()
	}()
	rctx, rcancel = context.WithTimeout(ctx, 3*time.Second)
	_, err = c.Put(rctx, s.key(), s.cfg.Self.String(), clientv3.WithLease(lease.ID))
	rcancel()
	if err != nil {
		return fmt.Errorf("etcd put %s: %w", s.key(), err)
	}
	ka, err := c.KeepAlive(ctx, lease.ID)
	if err != nil {
		return fmt.Errorf("etcd keepalive: %w", err)
	}
	rctx, rcancel = context.WithTimeout(ctx, 3*time.Second)
	resp, err := c.Get(rctx, s.cfg.Prefix, clientv3.WithPrefix())
	rcancel()
	if err != nil {
		return fmt.Errorf("etcd get %s: %w", s.cfg.Prefix, err)
	}
	nodes := map[string]netip.AddrPort{}
	for _, kv := range resp.Kvs {
		if a, err := netip.ParseAddrPort(string(kv.Value)); err == nil {
			nodes[string(kv.Key)] = a
		}
	}
	s.publish(nodes)
	wch := c.Watch(ctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-ka:
			if !ok {
				return fmt.Errorf("etcd lease %x lost", lease.ID)
			}
		case w, ok := <-wch:
			if !ok {
				return fmt.Errorf("etcd watch closed")
			}
			if err := w.Err(); err != nil {
				return fmt.Errorf("etcd watch: %w", err)
			}
			for _, ev := range w.Events {
				k := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypeDelete {
					delete(nodes, k)
					if k == s.key() {
						return fmt.Errorf("etcd: this node's key %s was deleted", k)
					}
					continue
				}
				if a, err := netip.ParseAddrPort(string(ev.Kv.Value)); err == nil {
					nodes[k] = a
				} else {
					s.log.Warn("etcd: a node's value is not ADDR:PORT; ignored", "key", k, "value", string(ev.Kv.Value))
				}
			}
			s.publish(nodes)
		}
	}
}

func (s *store) publish(nodes map[string]netip.AddrPort) {
	out := make([]netip.AddrPort, 0, len(nodes))
	for _, a := range nodes {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	out = slices.Compact(out)
	s.update(out, "up ("+strings.Join(s.cfg.Endpoints, ",")+")")
}

// Close revokes this node's lease (its key goes at once) and stops.
func (s *store) Close() error {
	s.mu.Lock()
	c, lease := s.client, s.lease
	s.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c.Revoke(ctx, lease)
		cancel()
	}
	s.cancel()
	<-s.done
	return nil
}
