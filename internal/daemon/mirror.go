package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"overcast/internal/api"
	"overcast/internal/config"
	"overcast/internal/dataplane"
	"overcast/internal/mirror"
)

// mirrorComp is traffic mirroring: tap services and flows from the file
// and from the API (run time, kept across reloads), applied to the
// mirroring data path as one set. It takes no part in routing; the data
// path opens at the first service (a daemon that never mirrors loads no
// eBPF).
type mirrorComp struct {
	d    *Daemon
	dp   dataplane.Mirror
	file mirror.Set // from the config
	api  mirror.Set // added at run time
}

func newMirror(d *Daemon) (*mirrorComp, error) {
	c := &mirrorComp{d: d}
	if d.cfg.Mirror != nil {
		c.file = d.cfg.Mirror.Set
	}
	if len(c.file.Services) > 0 {
		if err := c.apply(c.file); err != nil {
			return nil, d.cfg.Errorf(d.cfg.Line("mirror"), "mirror: %v", err)
		}
	}
	return c, nil
}

// open opens the data path on first use.
func (c *mirrorComp) open() error {
	if c.dp != nil {
		return nil
	}
	if c.d.env.Mirror == nil {
		return errors.New("this daemon has no mirroring data path (it runs on fakes)")
	}
	dp, err := c.d.env.Mirror()
	if err != nil {
		return err
	}
	c.dp = dp
	return nil
}

func (c *mirrorComp) apply(s mirror.Set) error {
	if len(s.Services) == 0 && c.dp == nil {
		return s.Check()
	}
	if err := c.open(); err != nil {
		return err
	}
	return c.dp.Apply(s)
}

func (c *mirrorComp) name() string                    { return "mirror" }
func (c *mirrorComp) ifaceUp(*iface, time.Time) error { return nil }
func (c *mirrorComp) ifaceDown(*iface, time.Time)     {}
func (c *mirrorComp) nextDeadline() time.Time         { return time.Time{} }
func (c *mirrorComp) advance(time.Time)               {}
func (c *mirrorComp) endBurst(time.Time)              {}
func (c *mirrorComp) stop() {
	if c.dp != nil {
		c.dp.Close()
	}
}

func fileSet(cfg *config.Config) mirror.Set {
	if cfg.Mirror == nil {
		return mirror.Set{}
	}
	return cfg.Mirror.Set
}

func (c *mirrorComp) checkReload(next *config.Config) error {
	s, err := fileSet(next).Merge(c.api)
	if err == nil && (len(s.Services) > 0 || c.dp != nil) {
		if err = c.open(); err == nil {
			err = c.dp.Check(s)
		}
	}
	if err != nil {
		return next.Errorf(next.Line("mirror"), "mirror: %v (the running sessions are unchanged)", err)
	}
	return nil
}

func (c *mirrorComp) reload(next *config.Config, _ time.Time) {
	file := fileSet(next)
	s, err := file.Merge(c.api)
	if err == nil {
		err = c.apply(s)
	}
	if err != nil {
		c.d.log.Error("mirror: reload not applied", "err", err)
		return
	}
	c.file = file
}

// change applies the file's set with a new run-time set, or leaves
// everything as it was.
func (c *mirrorComp) change(run mirror.Set) error {
	s, err := c.file.Merge(run)
	if err == nil {
		err = c.apply(s)
	}
	if err != nil {
		return api.BadRequest{Err: fmt.Errorf("%v (nothing changed)", err)}
	}
	c.api = run
	return nil
}

func (c *mirrorComp) answer(kind, name, action string) api.MirrorChange {
	s, _ := c.file.Merge(c.api)
	return api.MirrorChange{Kind: kind, Name: name, Action: action, Services: len(s.Services), Flows: len(s.Flows)}
}

func (c *mirrorComp) views(add func(string, viewFunc)) {
	add(api.PathMirror, func(time.Time, string) (any, error) { return c.view(), nil })
	add(api.PathMirrorServiceAdd, func(_ time.Time, arg string) (any, error) {
		var x mirror.Service
		if err := json.Unmarshal([]byte(arg), &x); err != nil {
			return nil, api.BadRequest{Err: fmt.Errorf("mirror service add: want a JSON service: %v", err)}
		}
		run := c.api
		run.Services = slices.Clone(run.Services)
		action := "added"
		if i := slices.IndexFunc(run.Services, func(s mirror.Service) bool { return s.Name == x.Name }); i >= 0 {
			run.Services[i], action = x, "changed"
		} else {
			run.Services = append(run.Services, x)
		}
		if err := c.change(run); err != nil {
			return nil, err
		}
		return c.answer("service", x.Name, action), nil
	})
	add(api.PathMirrorServiceDel, func(_ time.Time, name string) (any, error) {
		if _, ok := c.file.Service(name); ok {
			return nil, api.BadRequest{Err: fmt.Errorf("tap service %s is in the config file: remove it there and reload", name)}
		}
		i := slices.IndexFunc(c.api.Services, func(s mirror.Service) bool { return s.Name == name })
		if i < 0 {
			return nil, api.BadRequest{Err: fmt.Errorf("no tap service %s (overcast show mirror lists them)", name)}
		}
		run := mirror.Set{Services: slices.Delete(slices.Clone(c.api.Services), i, i+1)}
		for _, f := range c.api.Flows {
			if f.Service != name {
				run.Flows = append(run.Flows, f) // its flows go with it
			}
		}
		if err := c.change(run); err != nil {
			return nil, err
		}
		return c.answer("service", name, "removed"), nil
	})
	add(api.PathMirrorFlowAdd, func(_ time.Time, arg string) (any, error) {
		var f mirror.Flow
		if err := json.Unmarshal([]byte(arg), &f); err != nil {
			return nil, api.BadRequest{Err: fmt.Errorf("mirror flow add: want a JSON flow: %v", err)}
		}
		if f.Name == "" {
			f.Name = mirror.FlowName(f.Service, f.Port, f.Direction)
		}
		run := c.api
		run.Flows = slices.Clone(run.Flows)
		action := "added"
		if i := slices.IndexFunc(run.Flows, func(g mirror.Flow) bool { return g.Name == f.Name }); i >= 0 {
			run.Flows[i], action = f, "changed"
		} else {
			run.Flows = append(run.Flows, f)
		}
		if err := c.change(run); err != nil {
			return nil, err
		}
		return c.answer("flow", f.Name, action), nil
	})
	add(api.PathMirrorFlowDel, func(_ time.Time, name string) (any, error) {
		if slices.ContainsFunc(c.file.Flows, func(f mirror.Flow) bool { return f.Name == name }) {
			return nil, api.BadRequest{Err: fmt.Errorf("tap flow %s is in the config file: remove it there and reload", name)}
		}
		i := slices.IndexFunc(c.api.Flows, func(f mirror.Flow) bool { return f.Name == name })
		if i < 0 {
			return nil, api.BadRequest{Err: fmt.Errorf("no tap flow %s (overcast show mirror lists them)", name)}
		}
		run := mirror.Set{Services: c.api.Services, Flows: slices.Delete(slices.Clone(c.api.Flows), i, i+1)}
		if err := c.change(run); err != nil {
			return nil, err
		}
		return c.answer("flow", name, "removed"), nil
	})
}

func (c *mirrorComp) view() api.MirrorView {
	out := api.MirrorView{Services: []api.MirrorServiceRow{}, Flows: []api.MirrorFlowRow{}}
	var st map[string]dataplane.MirrorFlowState
	if c.dp != nil {
		st = c.dp.Counters()
	}
	origin := func(inFile bool) string {
		if inFile {
			return "config"
		}
		return "api"
	}
	sums := map[string]*api.MirrorServiceRow{}
	for _, set := range []mirror.Set{c.file, c.api} {
		for _, s := range set.Services {
			vlan := "keep"
			if s.StripVLAN {
				vlan = "strip"
			}
			_, inFile := c.file.Service(s.Name)
			out.Services = append(out.Services, api.MirrorServiceRow{Name: s.Name, Target: s.Target(), VNI: s.VNI, Truncate: s.Truncate,
				Rate: s.Rate.String(), VLAN: vlan, MAC: s.MAC, Origin: origin(inFile)})
		}
	}
	for i := range out.Services {
		sums[out.Services[i].Name] = &out.Services[i]
	}
	for _, set := range []mirror.Set{c.file, c.api} {
		for _, f := range set.Flows {
			fs := st[f.Name]
			cn := fs.Counters
			state := "attached"
			if !fs.Attached {
				state = fs.Detail
				if state == "" {
					state = "not attached"
				}
			}
			inFile := slices.ContainsFunc(c.file.Flows, func(g mirror.Flow) bool { return g.Name == f.Name })
			rules := f.Rules
			if rules == nil {
				rules = []string{}
			}
			out.Flows = append(out.Flows, api.MirrorFlowRow{Name: f.Name, Service: f.Service, Port: f.Port, Direction: f.Direction.String(),
				Rules: rules, Origin: origin(inFile), State: state, Note: fs.Note, Counters: cn})
			if s := sums[f.Service]; s != nil {
				s.Flows++
				s.Counters.Add(cn)
			}
		}
	}
	return out
}
