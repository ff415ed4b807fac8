// Package api is the daemon's local API: JSON over HTTP on a unix socket.
// The types here are the wire format shared by server and client.
package api

import "time"

// IGMPGroup is one row of `show igmp groups`.
type IGMPGroup struct {
	Interface string       `json:"interface"`
	Group     string       `json:"group"`
	Mode      string       `json:"mode"`
	Version   int          `json:"version"`
	Static    bool         `json:"static"`
	Uptime    Duration     `json:"uptime"`
	Expires   Duration     `json:"expires"`
	Reporter  string       `json:"last_reporter,omitempty"`
	Sources   []IGMPSource `json:"sources,omitempty"`
	Hosts     []string     `json:"hosts,omitempty"`
}

// IGMPSource is a source record of a group.
type IGMPSource struct {
	Source  string   `json:"source"`
	Expires Duration `json:"expires"`
	Forward bool     `json:"forward"`
}

// IGMPInterface is one row of `show igmp interface`.
type IGMPInterface struct {
	Name                  string    `json:"name"`
	Address               string    `json:"address"`
	VIF                   int       `json:"vif"`
	Version               int       `json:"version"`
	Querier               bool      `json:"querier"`
	QuerierAddress        string    `json:"querier_address"`
	NextQuery             Duration  `json:"next_query"`
	OtherQuerierExpires   Duration  `json:"other_querier_expires"`
	QueryInterval         Duration  `json:"query_interval"`
	QueryResponseInterval Duration  `json:"query_response_interval"`
	LastMemberQueryTime   Duration  `json:"last_member_query_time"`
	Robustness            int       `json:"robustness"`
	ExplicitTracking      bool      `json:"explicit_tracking"`
	Groups                int       `json:"groups"`
	Stats                 IGMPStats `json:"stats"`
}

// IGMPStats are an interface's IGMP counters.
type IGMPStats struct {
	RxQueries   uint64 `json:"rx_queries"`
	RxV1Reports uint64 `json:"rx_v1_reports"`
	RxV2Reports uint64 `json:"rx_v2_reports"`
	RxV3Reports uint64 `json:"rx_v3_reports"`
	RxLeaves    uint64 `json:"rx_leaves"`
	TxQueries   uint64 `json:"tx_queries"`
	Malformed   uint64 `json:"malformed"`
	BadChecksum uint64 `json:"bad_checksum"`
	Truncated   uint64 `json:"truncated"`
	Ignored     uint64 `json:"ignored"`
	FastLeaves  uint64 `json:"fast_leaves"`
}

// MRoute is one (S,G) entry of `show mroute`.
type MRoute struct {
	Source   string   `json:"source"`
	Group    string   `json:"group"`
	IIF      string   `json:"iif"`
	OIFs     []OIF    `json:"oifs"`
	Flags    string   `json:"flags"`
	Uptime   Duration `json:"uptime"`
	Expires  Duration `json:"expires"`
	Packets  uint64   `json:"packets"`
	Bytes    uint64   `json:"bytes"`
	WrongIf  uint64   `json:"wrong_if"`
	PPS      float64  `json:"pps"`
	KBPS     float64  `json:"kbps"`
	Programs bool     `json:"in_kernel"`
}

// OIF is one outgoing interface and why it is there.
type OIF struct {
	Name   string `json:"name"`
	Origin string `json:"origin"` // igmp or static
}

// Status is the daemon's own state.
type Status struct {
	Version     string   `json:"version"`
	PID         int      `json:"pid"`
	Uptime      Duration `json:"uptime"`
	Config      string   `json:"config"`
	Reloads     uint64   `json:"reloads"`
	ReloadError string   `json:"reload_error,omitempty"`
	Upcalls     uint64   `json:"upcalls"`
	KernelErrs  uint64   `json:"kernel_errors"`
}

// Duration marshals as seconds (float) in JSON and prints like 1m05s.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmtFloat(time.Duration(d).Seconds())), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var f float64
	if _, err := fmtScan(string(b), &f); err != nil {
		return err
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// String is the Cisco-like hh:mm:ss form used in tables.
func (d Duration) String() string {
	t := time.Duration(d)
	if t <= 0 {
		return "-"
	}
	s := int(t.Round(time.Second) / time.Second)
	if t < 10*time.Second {
		return t.Round(100 * time.Millisecond).String()
	}
	return fmtHMS(s)
}
