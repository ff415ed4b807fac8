// Package api is the daemon's local API: JSON over HTTP on a unix socket.
// The types here are the wire format shared by server and client.
package api

import (
	"strconv"
	"time"
)

// IGMPGroup is one row of `show igmp groups`.
type IGMPGroup struct {
	Interface string       `json:"interface"`
	Group     string       `json:"group"`
	Mode      string       `json:"mode,omitempty"` // INCLUDE or EXCLUDE (IGMPv3); null for v1/v2 groups
	Version   int          `json:"igmp_version"`
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
	Version               int       `json:"igmp_version"`
	Querier               bool      `json:"querier"`
	QuerierAddress        string    `json:"querier_address"`
	NextQuery             Duration  `json:"next_query"`
	OtherQuerierExpires   Duration  `json:"other_querier_expires"`
	QueryInterval         Duration  `json:"query_interval"`
	QueryResponseInterval Duration  `json:"query_response_interval"`
	LastMemberQueryTime   Duration  `json:"last_member_query_time"`
	Robustness            int       `json:"robustness"`
	ExplicitTracking      bool      `json:"explicit_tracking"`
	Groups                int       `json:"group_count"`
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
	// Groups and sources refused at the interface's max-groups / max-sources.
	GroupLimit  uint64 `json:"group_limit_refused"`
	SourceLimit uint64 `json:"source_limit_refused"`
	HostLimit   uint64 `json:"host_limit_refused"` // groups refused at a host's max-groups-per-host
}

// MRoute is one entry of `show mroute`: a (*,G) (Source "*", from PIM's
// shared-tree state) or an (S,G) (a flow the data plane carries).
type MRoute struct {
	Source string `json:"source"` // "*" for (*,G)
	Group  string `json:"group"`
	RP     string `json:"rp"` // the group's RP ("" for SSM and without PIM)
	// Mode is what routes it: sparse (PIM-SM), ssm (PIM-SSM) or igmp (no PIM: IGMP alone).
	Mode string `json:"mode"`
	IIF  string `json:"iif"`                  // "" for (*,G) at the RP (IOS: Null)
	RPF  string `json:"iif_origin,omitempty"` // who chose the input: pim (RPF) or flow (where it arrived)
	// RPFNbr is the upstream neighbour joins go to ("" directly connected, at the RP, or without PIM).
	RPFNbr string `json:"rpf_neighbor"`
	// Registering: this first hop encapsulates the flow to the RP (the register VIF is an output).
	Registering bool     `json:"registering"`
	OIFs        []OIF    `json:"oifs"`
	Flags       string   `json:"flags"`
	Uptime      Duration `json:"uptime"`
	Expires     Duration `json:"expires"` // 0: stopped (IOS), the entry lives while its outputs do
	Packets     uint64   `json:"packets"`
	Bytes       uint64   `json:"bytes"`
	WrongIf     uint64   `json:"wrong_if"`
	PPS         float64  `json:"pps"`
	KBPS        float64  `json:"kbps"`
	Programs    bool     `json:"in_kernel"`
	Peers       []string `json:"overlay_peers,omitempty"` // the overlay peers it is replicated to
}

// OIF is one outgoing interface and why it is there.
type OIF struct {
	Name    string   `json:"name"`
	Origin  string   `json:"origin"`  // who wants it: igmp, static, pim, register, msdp, overlay, restart
	Uptime  Duration `json:"uptime"`  // how long it has been there
	Expires Duration `json:"expires"` // when the join or membership behind it runs out (0: stopped)
	// AssertWinner: this router won an assert on the interface (IOS flag A).
	AssertWinner bool `json:"assert_winner"`
}

// Cleared is the answer to clear ip mroute and clear ip igmp group.
type Cleared struct {
	What    string `json:"what"`    // mroute or igmp group
	Group   string `json:"group"`   // the group, or * for all
	Cleared int    `json:"cleared"` // entries removed
}

// RestartRequest is restart's body: the successor binary ("": the
// running one).
type RestartRequest struct {
	Binary string `json:"binary"`
}

// StopRequest is stop's body.
type StopRequest struct {
	Flush bool `json:"flush"` // remove the kernel's routes and VIFs too
}

// Lifecycle is the answer to restart and stop.
type Lifecycle struct {
	Action string `json:"action"` // restarting or stopping
	Detail string `json:"detail"`
}

// Histogram is a latency distribution: per upper bound (le, seconds) the
// count of observations at or below it (cumulative, as Prometheus's
// buckets), their sum and count.
type Histogram struct {
	Buckets []Bucket `json:"buckets"`
	Sum     Duration `json:"sum"`
	Count   uint64   `json:"count"`
}

// Bucket is one histogram bound.
type Bucket struct {
	LE    Duration `json:"le"`
	Count uint64   `json:"count"`
}

// Status is the daemon's own state.
type Status struct {
	Version string   `json:"version"`
	PID     int      `json:"pid"`
	Uptime  Duration `json:"uptime"`
	Config  string   `json:"config"`
	Reloads uint64   `json:"reloads"`
	// Handovers counts the planned restarts (overcast restart, SIGUSR2)
	// this router has been through without a stop; AdoptedRoutes the
	// kernel routes its run took over from the previous one.
	Handovers     uint64 `json:"handovers"`
	AdoptedRoutes int    `json:"adopted_routes"`
	ReloadError   string `json:"reload_error,omitempty"`
	Upcalls       uint64 `json:"upcalls"`
	KernelErrs    uint64 `json:"kernel_errors"`
	// Flows the daemon tracks, routes it has in the kernel, and how often
	// it reads their counters (slower as routes grow).
	Flows       int      `json:"flow_count"`
	Routes      int      `json:"routes"`
	CounterPoll Duration `json:"counter_poll"`
	// HeapBytes is the Go heap in live objects; GoMemoryBytes what the Go
	// runtime holds from the OS (heap, stacks, metadata, not yet released).
	HeapBytes     uint64   `json:"heap_bytes"`
	GoMemoryBytes uint64   `json:"go_memory_bytes"`
	Components    []string `json:"components"` // igmp, pim, ...
	PIM           PIMStats `json:"pim"`
	// JoinLatency: from a member's join to this router forwarding the
	// group's first packet onto its interface.
	JoinLatency Histogram `json:"join_to_first_packet"`
}

// Duration marshals as seconds (float) in JSON and prints like 1m05s.
type Duration time.Duration

// Millis is a time in milliseconds in Go (a float, for averages and
// jitter) that prints as seconds in JSON, as every timer does.
type Millis float64

func (m Millis) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(m)/1000, 'f', 6, 64)), nil
}

func (m *Millis) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = 0
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*m = Millis(f * 1000)
	return err
}

// JSONSchema: Millis prints as seconds.
func (Millis) JSONSchema() map[string]any {
	return map[string]any{"type": "number", "description": "seconds"}
}

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmtFloat(time.Duration(d).Seconds())), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = 0 // absent: a timer not running
		return nil
	}
	var f float64
	if _, err := fmtScan(string(b), &f); err != nil {
		return err
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// String is the IOS form of a timer: 00:01:23 under a day, 1d20h under a
// week, 8w1d beyond; "stopped" for a timer that is not running (zero or
// negative).
func (d Duration) String() string {
	t := time.Duration(d)
	if t <= 0 {
		return "stopped"
	}
	return fmtHMS(int(t.Round(time.Second) / time.Second))
}

// Uptime is the IOS form of an age: like String, but 00:00:00 for zero.
func (d Duration) Uptime() string {
	if d <= 0 {
		return "00:00:00"
	}
	return d.String()
}

// PIMNeighbor is one row of `show pim neighbor`.
type PIMNeighbor struct {
	Interface    string   `json:"interface"`
	Address      string   `json:"address"`
	Uptime       Duration `json:"uptime"`
	Expires      Duration `json:"expires"`
	DRPriority   uint32   `json:"dr_priority"`
	GenerationID uint32   `json:"generation_id"`
	DR           bool     `json:"dr"`
	Secondary    []string `json:"secondary,omitempty"`
}

// PIMInterface is one row of `show pim interface`.
type PIMInterface struct {
	Name             string   `json:"name"`
	Address          string   `json:"address"`
	Active           bool     `json:"active"` // sends hellos; passive interfaces only have receivers
	DR               string   `json:"dr_address"`
	IAmDR            bool     `json:"i_am_dr"`
	DRPriority       uint32   `json:"dr_priority"`
	HelloPeriod      Duration `json:"hello_period"`
	NextHello        Duration `json:"next_hello"`
	Holdtime         Duration `json:"holdtime"`
	Neighbors        int      `json:"neighbor_count"`
	GenerationID     uint32   `json:"generation_id"`
	PropagationDelay Duration `json:"propagation_delay"`
	OverrideInterval Duration `json:"override_interval"`
	// JoinSuppression is whether routers on this LAN suppress their
	// periodic joins when they hear another's (off only when every
	// router, this one included, sets the T bit: RFC 7761 4.3.3).
	JoinSuppression bool `json:"join_suppression"`
	// Rejected counts the messages admission refused on the interface,
	// by reason (every reason present, zero or not).
	Rejected map[string]uint64 `json:"rejected"`
}

// PIMStatistics is `show pim statistics`: message counters, and what
// admission refused, by reason, per interface ("(unicast)" for Registers
// and Register-Stops that came on no PIM interface).
type PIMStatistics struct {
	RxPackets     uint64                `json:"rx_packets"`
	TxPackets     uint64                `json:"tx_packets"`
	Malformed     uint64                `json:"malformed"`
	SendErrors    uint64                `json:"send_errors"`
	RejectedTotal uint64                `json:"rejected_total"`
	Rejected      map[string]uint64     `json:"rejected"`
	Interfaces    []PIMInterfaceRejects `json:"interfaces"`
}

// PIMInterfaceRejects is one interface's refusals by reason.
type PIMInterfaceRejects struct {
	Name     string            `json:"name"`
	Rejected map[string]uint64 `json:"rejected"`
}

// PIMRP is one row of `show pim rp`.
type PIMRP struct {
	Groups string `json:"group_range"`
	RP     string `json:"rp"`
	Local  bool   `json:"local"` // this router is the RP
	RPFIf  string `json:"rpf_interface"`
	SSM    bool   `json:"ssm"` // an SSM range: no RP
	// Anycast lists the RFC 4610 set sharing the RP address (unique
	// addresses), and Forwarded counts Registers copied to them.
	Anycast   []string `json:"anycast_set,omitempty"`
	Forwarded uint64   `json:"registers_forwarded,omitempty"`
}

// PIMJoin is one (*,G) or (S,G) entry of `show pim join`.
type PIMJoin struct {
	Source    string   `json:"source"` // "*" for (*,G)
	Group     string   `json:"group"`
	Upstream  string   `json:"upstream"` // Joined or NotJoined
	RPFIf     string   `json:"rpf_interface"`
	RPFNbr    string   `json:"rpf_neighbor"`
	SPT       bool     `json:"spt"`
	RPTPruned bool     `json:"rpt_pruned"`
	Register  string   `json:"register"`
	Keepalive Duration `json:"keepalive"`
	// JoinSuppressed is how long our periodic join stays suppressed
	// because another router on the upstream LAN joined (RFC 7761 4.5.7).
	JoinSuppressed Duration      `json:"join_suppressed,omitempty"`
	Uptime         Duration      `json:"uptime"`
	Downstream     []PIMDownItem `json:"downstream"`
	RPTPrunes      []PIMDownItem `json:"rpt_prunes,omitempty"`
	Local          []string      `json:"local_members"`
	// SPTThreshold is the group's switchover rule at a last hop
	// ("immediate", "infinity", "N kbps", "N packets"); RateKbps the
	// source's last measured rate; SPTWanted whether it crossed the rule.
	SPTThreshold string `json:"spt_threshold"`
	RateKbps     uint64 `json:"rate_kbps"`
	SPTWanted    bool   `json:"spt_threshold_crossed"`
}

// PIMAssert is one interface's assert state for (S,G) or (*,G) (`show pim
// assert`): who forwards the flow onto that LAN, and with what metric.
type PIMAssert struct {
	Source     string   `json:"source"` // "*" for (*,G)
	Group      string   `json:"group"`
	Interface  string   `json:"interface"`
	State      string   `json:"state"` // Winner or Loser
	Winner     string   `json:"winner"`
	RPT        bool     `json:"rpt"`
	Preference uint32   `json:"preference"`
	Metric     uint32   `json:"metric"`
	Expires    Duration `json:"expires"`
}

// PIMDownItem is a downstream interface's state.
type PIMDownItem struct {
	Interface string   `json:"interface"`
	State     string   `json:"state"`
	Expires   Duration `json:"expires"`
}

// RPF is `show rpf ADDR`.
type RPF struct {
	Address  string `json:"address"`
	Found    bool   `json:"found"`
	Iface    string `json:"interface"`
	Neighbor string `json:"neighbor"` // empty when directly connected
	Metric   uint32 `json:"metric"`
	// Protocol installed the route (connected, kernel, static, ospf, bgp,
	// ...); Preference is its administrative distance, as asserts use it.
	Protocol   string `json:"protocol,omitempty"`
	Preference uint32 `json:"preference"`
	Local      bool   `json:"local"`
	// Table is where the route came from, Cisco's "RPF type": mbgp (the
	// IPv4 multicast BGP table) or unicast; Route is the MBGP prefix.
	Table string `json:"table,omitempty"`
	Route string `json:"route,omitempty"`
}

// BGPRoute is a best path of `show bgp ipv4 multicast`.
type BGPRoute struct {
	Prefix   string   `json:"prefix"`
	NextHop  string   `json:"next_hop,omitempty"`
	Peer     string   `json:"peer,omitempty"`
	PeerAS   uint32   `json:"peer_as,omitempty"`
	External bool     `json:"ebgp"`
	Local    bool     `json:"local"`
	MED      uint32   `json:"med"`
	ASPath   []uint32 `json:"as_path"`
}

// BGPSummary is `show bgp ipv4 multicast summary`.
type BGPSummary struct {
	AS        uint32        `json:"as"`
	RouterID  string        `json:"router_id"`
	Routes    int           `json:"routes"`
	Neighbors []BGPNeighbor `json:"neighbors"`
}

// BGPNeighbor is one neighbour of the summary.
type BGPNeighbor struct {
	Address  string   `json:"address"`
	AS       uint32   `json:"as"`
	State    string   `json:"state"`
	Uptime   Duration `json:"uptime"`
	Received int      `json:"prefixes_received"`
	Accepted int      `json:"prefixes_accepted"`
	MD5      bool     `json:"md5"`
}

// PIMStats are the daemon's PIM counters, in Status.
type PIMStats struct {
	Enabled    bool   `json:"enabled"`
	RxPackets  uint64 `json:"rx_packets"`
	TxPackets  uint64 `json:"tx_packets"`
	Malformed  uint64 `json:"malformed"`
	SendErrors uint64 `json:"send_errors"`
	ASMInSSM   uint64 `json:"asm_joins_in_ssm_range_ignored"`
	Rejected   uint64 `json:"rejected_total"` // refused by admission, every reason (show pim statistics)
}

// MSDPPeer is one peer of `show msdp peer`.
type MSDPPeer struct {
	Address       string   `json:"address"`
	Local         string   `json:"local_address"` // connection source
	State         string   `json:"state"`
	Role          string   `json:"role"`   // "connects" or "listens" (the lower address connects)
	Uptime        Duration `json:"uptime"` // in the current state
	Holdtime      Duration `json:"holdtime_expires,omitempty"`
	Retry         Duration `json:"connect_retry,omitempty"`
	LastReset     string   `json:"last_reset,omitempty"`
	MeshGroup     string   `json:"mesh_group,omitempty"`
	MD5           bool     `json:"md5"`
	FilterIn      string   `json:"sa_filter_in,omitempty"`
	FilterOut     string   `json:"sa_filter_out,omitempty"`
	SALimit       int      `json:"sa_limit"`
	Default       bool     `json:"default_peer"`
	RemoteAS      uint32   `json:"remote_as,omitempty"`
	SALearned     int      `json:"sa_learned"` // in the cache now
	SAIn          uint64   `json:"sa_in"`
	SAOut         uint64   `json:"sa_out"`
	EntriesIn     uint64   `json:"sa_entries_in"`
	EntriesOut    uint64   `json:"sa_entries_out"`
	RequestsIn    uint64   `json:"sa_requests_in"`
	ResponsesIn   uint64   `json:"sa_responses_in"`
	KeepalivesIn  uint64   `json:"keepalives_in"`
	KeepalivesOut uint64   `json:"keepalives_out"`
	DataIn        uint64   `json:"sa_with_data_in"`
	RPFFailures   uint64   `json:"rpf_failures"`
	FilteredIn    uint64   `json:"filtered_in"`
	FilteredOut   uint64   `json:"filtered_out"`
	LimitDrops    uint64   `json:"limit_drops"`
	OwnSAs        uint64   `json:"own_sas"`
	Unknown       uint64   `json:"unknown_tlvs"`
	Malformed     uint64   `json:"malformed"`
	Resets        uint64   `json:"resets"`
	Refused       uint64   `json:"connections_refused"`
	AuthFailures  uint64   `json:"md5_failures"`
}

// MSDPSA is one entry of `show msdp sa-cache`.
type MSDPSA struct {
	Source  string   `json:"source"`
	Group   string   `json:"group"`
	RP      string   `json:"rp"`
	Peer    string   `json:"peer,omitempty"` // learned from; empty when originated here
	Local   bool     `json:"local"`          // originated by this router
	AS      uint32   `json:"as,omitempty"`   // origin AS of the route to the RP (BGP)
	Uptime  Duration `json:"uptime"`
	Expires Duration `json:"expires,omitempty"`
	Joined  bool     `json:"joined"` // this RP has receivers and joined toward the source
}

// MSDPRPF is `show msdp rpf-peer ADDR`: the peer SAs originated by an RP
// are accepted from, and the rule that chose it.
type MSDPRPF struct {
	RP       string `json:"rp"`
	Peer     string `json:"peer,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Table    string `json:"table,omitempty"` // where the route toward the RP came from
	Protocol string `json:"protocol,omitempty"`
	NextHop  string `json:"next_hop,omitempty"`
	Iface    string `json:"interface,omitempty"`
	Reason   string `json:"reason,omitempty"` // when no peer: why
}

// Overlay is `show overlay`: this node's side of the overlay.
type Overlay struct {
	Local       string       `json:"local_address"` // underlay address:port
	Interface   string       `json:"interface"`     // the overlay device
	MTU         int          `json:"mtu"`
	Peers       int          `json:"peer_count"`
	PeersUp     int          `json:"peers_up"`
	Version     uint64       `json:"interest_version"`
	LocalGroups []string     `json:"local_groups"` // groups this node's receivers want
	Routes      int          `json:"routes"`       // (S,G) replicated into the overlay
	Store       string       `json:"store,omitempty"`
	StoreState  string       `json:"store_state,omitempty"`
	Stats       OverlayStats `json:"stats"`
}

// OverlayStats are the overlay's drop counters.
type OverlayStats struct {
	NotPeer       uint64 `json:"not_peer"` // datagrams from addresses that are not peers (data and control)
	ControlNoPeer uint64 `json:"control_not_peer"`
	Malformed     uint64 `json:"malformed"`
	Looped        uint64 `json:"looped"`
	NoRoute       uint64 `json:"no_route"`
	TooBig        uint64 `json:"too_big"`
}

// OverlayPeer is one row of `show overlay peers`.
type OverlayPeer struct {
	Peer       string   `json:"peer"`
	State      string   `json:"state"` // up or down
	Origin     string   `json:"origin"`
	Uptime     Duration `json:"uptime"`
	LastHeard  Duration `json:"last_heard"`  // ago
	RTTms      Millis   `json:"rtt"`         // microsecond precision; 0: not measured yet
	Groups     int      `json:"group_count"` // groups the peer wants
	Synced     bool     `json:"synced"`
	PacketsIn  uint64   `json:"packets_in"`
	BytesIn    uint64   `json:"bytes_in"`
	PacketsOut uint64   `json:"packets_out"`
	BytesOut   uint64   `json:"bytes_out"`
	Drops      uint64   `json:"drops"` // copies the underlay refused
	AuthFailed uint64   `json:"auth_failed"`
	Replayed   uint64   `json:"replayed"`
	Malformed  uint64   `json:"malformed"`
	OverLimit  uint64   `json:"over_limit"`
	HellosIn   uint64   `json:"hellos_in"`
	HellosOut  uint64   `json:"hellos_out"`
	DumpsIn    uint64   `json:"dumps_in"`
	DumpsOut   uint64   `json:"dumps_out"`
}

// OverlayRoute is one row of `show overlay routes`: an (S,G) replicated
// into the overlay and, per peer, why.
type OverlayRoute struct {
	Source string             `json:"source"`
	Group  string             `json:"group"`
	IIF    string             `json:"incoming"`
	Peers  []OverlayRoutePeer `json:"peers"`
}

// OverlayRoutePeer is one peer of a replication list and the interest
// that put it there.
type OverlayRoutePeer struct {
	Peer    string   `json:"peer"`
	Mode    string   `json:"mode"` // include (the source is listed) or exclude (all sources but those listed)
	Sources []string `json:"source_addresses"`
}

// OverlayPeerChange is the answer to overlay peer add/del.
type OverlayPeerChange struct {
	Peer   string `json:"peer"`
	Action string `json:"action"`
	Peers  int    `json:"peer_count"`
}
