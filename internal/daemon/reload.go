package daemon

import (
	"time"

	"overcast/internal/config"
)

// ReloadFile re-reads the config file and applies it as a diff. A file
// that does not validate, or a change only a restart can apply, is
// rejected whole with file:line: reason, and the running config stays.
func (d *Daemon) ReloadFile(now time.Time) error {
	next, err := config.Load(d.path, d.linkExists)
	if err == nil {
		err = d.Reload(next, now)
	}
	if err != nil {
		d.reloadError = err.Error()
		d.log.Error("reload rejected; keeping the running configuration", "err", err)
		return err
	}
	return nil
}

// Reload applies a validated config as a diff: every field takes effect
// now (interfaces added and removed, IGMP settings, PIM on/off per
// interface, DR priority, hello interval, RP set, SSM ranges, SPT
// thresholds, timers, keepalive, log level), or the whole reload is
// rejected because one needs a restart (api-socket, PIM as a whole).
func (d *Daemon) Reload(next *config.Config, now time.Time) error {
	if err := d.checkReload(next); err != nil {
		return err
	}
	d.reloads++
	d.reloadError = ""
	d.cfg = next
	d.setLevel(next.LogLevel)
	for _, x := range d.sortedIfs() {
		if next.InterfaceIndex(x.name) < 0 {
			d.removeInterface(x, now)
		}
	}
	// Components compare each interface's running settings (x.cfg) with
	// the new ones, then the interfaces take the new settings.
	for _, c := range d.components() {
		c.reload(next, now)
	}
	for _, ic := range next.Interfaces {
		if x := d.ifs[ic.Name]; x != nil {
			x.cfg = ic
			continue
		}
		if err := d.addInterface(ic, now); err != nil {
			// The link vanished between validation and now: say so and
			// carry on with the rest (it is retried at the next reload).
			d.log.Error("reload: interface not added", "interface", ic.Name, "err", err)
			d.reloadError = err.Error()
		}
	}
	d.reconcile(now)
	d.EndBurst(now)
	d.log.Info("configuration reloaded", "config", d.path)
	return nil
}

// checkReload rejects changes that need a restart.
func (d *Daemon) checkReload(next *config.Config) error {
	if next.Metrics != d.cfg.Metrics {
		return next.Errorf(next.Line("metrics"), "metrics %q -> %q: the metrics listener is opened at start, so this needs a restart (or keep %q)", d.cfg.Metrics, next.Metrics, d.cfg.Metrics)
	}
	if next.APISocket != d.cfg.APISocket {
		return next.Errorf(next.Line("api-socket"), "api-socket %s -> %s: the API socket is opened at start, so this needs a restart (or keep %s)", d.cfg.APISocket, next.APISocket, d.cfg.APISocket)
	}
	if d.pim == nil && next.PIMEnabled() {
		return next.Errorf(next.Line("pim"), "PIM is off in the running configuration: turning it on needs a restart (the kernel's register VIF and PIM mode are set at start)")
	}
	if d.mbgp == nil && next.BGP != nil {
		return next.Errorf(next.Line("bgp"), "BGP is off in the running configuration: turning it on needs a restart (systemctl restart overcast)")
	}
	if d.msdp == nil && next.MSDP != nil {
		return next.Errorf(next.Line("msdp"), "MSDP is off in the running configuration: turning it on needs a restart (systemctl restart overcast)")
	}
	if d.ovl == nil && next.Overlay != nil {
		return next.Errorf(next.Line("overlay"), "the overlay is off in the running configuration: turning it on needs a restart (systemctl restart overcast)")
	}
	for _, c := range d.components() {
		if err := c.checkReload(next); err != nil {
			return err
		}
	}
	return nil
}
