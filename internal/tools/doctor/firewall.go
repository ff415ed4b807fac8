package doctor

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	nftHandle  = regexp.MustCompile(`\s*# handle (\d+)\s*$`)
	mcastDaddr = regexp.MustCompile(`daddr (22[4-9]|23[0-9])\.`)
	nftHook    = regexp.MustCompile(`\bhook (\w+)\b`)
	nftPolicy  = regexp.MustCompile(`\bpolicy (\w+);`)
	nftComment = regexp.MustCompile(`\s*comment "[^"]*"`)
	nftCounter = regexp.MustCompile(`\s*counter packets \d+ bytes \d+`)
)

// classify says what a dropping rule drops that multicast needs, or "".
func classify(rule string) string {
	r := " " + strings.ToLower(rule) + " "
	switch {
	case strings.Contains(r, " igmp ") || strings.Contains(r, "protocol 2 ") || strings.Contains(r, "-p 2 "):
		return "igmp"
	case strings.Contains(r, "ip option") || strings.Contains(r, "ipv4options"):
		return "ip-options"
	case strings.Contains(r, "224.0.0.0/4") || strings.Contains(r, "multicast") || mcastDaddr.MatchString(r) || regexp.MustCompile(` -d (22[4-9]|23[0-9])\.`).MatchString(r):
		return "multicast"
	case strings.Contains(r, " udp ") && !strings.Contains(r, "port") && !strings.Contains(r, "addr") && !strings.Contains(r, " -s ") && !strings.Contains(r, " -d "):
		return "udp"
	}
	if m := udpDport.FindStringSubmatch(r); m != nil && (strings.Contains(r, " udp ") || strings.Contains(r, "-p udp")) {
		return "udp-port:" + m[1] // judged against the stream's port (Options.Port)
	}
	return ""
}

// udpDport is a rule's UDP destination port (nft "dport N", iptables "--dport N").
var udpDport = regexp.MustCompile(`(?:\s|^)(?:--)?dport (\d+)\b`)

// relevantHook: hooks where dropping breaks a host or router's multicast.
func relevantHook(h string) bool {
	switch strings.ToLower(h) {
	case "input", "prerouting", "forward", "output":
		return true
	}
	return false
}

// ParseNFT finds rules that drop what multicast needs in `nft -a list
// ruleset` output, and input chains whose policy drops without accepting IGMP.
func ParseNFT(text string) (rules []FirewallRule, notes []string) {
	var table, chain, hook, policy string
	acceptsIGMP := false
	endChain := func() {
		if chain != "" && hook == "input" && policy == "drop" && !acceptsIGMP {
			notes = append(notes, fmt.Sprintf("nft chain %s/%s (input hook) has policy drop and no rule accepting IGMP: queries and other hosts' reports are dropped unless accepted elsewhere", table, chain))
		}
		chain, hook, policy, acceptsIGMP = "", "", "", false
	}
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		handle := ""
		if m := nftHandle.FindStringSubmatch(l); m != nil {
			handle = m[1]
			l = strings.TrimSpace(nftHandle.ReplaceAllString(l, ""))
		}
		switch {
		case strings.HasPrefix(l, "table "):
			f := strings.Fields(l)
			if len(f) >= 3 {
				table = f[1] + "/" + f[2]
			}
		case strings.HasPrefix(l, "chain "):
			f := strings.Fields(l)
			if len(f) >= 2 {
				chain = f[1]
			}
		case strings.HasPrefix(l, "type ") && strings.Contains(l, " hook "):
			if m := nftHook.FindStringSubmatch(l); m != nil {
				hook = m[1]
			}
			if m := nftPolicy.FindStringSubmatch(l); m != nil {
				policy = m[1]
			}
		case l == "}":
			if chain != "" {
				endChain()
			} else {
				table = ""
			}
		case l == "" || strings.HasPrefix(l, "policy "):
			if m := nftPolicy.FindStringSubmatch(l + ";"); m != nil && chain != "" {
				policy = m[1]
			}
		default:
			if chain == "" {
				continue
			}
			clean := nftCounter.ReplaceAllString(nftComment.ReplaceAllString(l, ""), "")
			words := strings.Fields(clean)
			if len(words) == 0 {
				continue
			}
			verdict := words[len(words)-1]
			if verdict == "accept" && classify(clean) == "igmp" {
				acceptsIGMP = true
			}
			if (verdict != "drop" && verdict != "reject") && !strings.Contains(clean, " reject with ") {
				continue
			}
			if what := classify(clean); what != "" && relevantHook(hook) {
				rules = append(rules, FirewallRule{Tool: "nft", Where: table + "/" + chain, Hook: hook, Rule: l, Handle: handle, Drops: what})
			}
		}
	}
	return rules, notes
}

// ParseIPTables does the same for `iptables-save` output.
func ParseIPTables(text string) (rules []FirewallRule, notes []string) {
	table := ""
	policies := map[string]string{}
	acceptsIGMP := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, ":"):
			f := strings.Fields(l[1:])
			if len(f) >= 2 && table == "filter" {
				policies[f[0]] = f[1]
			}
		case strings.HasPrefix(l, "-A "):
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			ch := f[1]
			verdict := ""
			for i := range f {
				if f[i] == "-j" && i+1 < len(f) {
					verdict = f[i+1]
				}
			}
			what := classify(l)
			if verdict == "ACCEPT" && what == "igmp" {
				acceptsIGMP[ch] = true
			}
			if (verdict == "DROP" || verdict == "REJECT") && what != "" && relevantHook(ch) {
				rules = append(rules, FirewallRule{Tool: "iptables", Where: table + "/" + ch, Hook: strings.ToLower(ch), Rule: l, Drops: what})
			}
		}
	}
	if policies["INPUT"] == "DROP" && !acceptsIGMP["INPUT"] {
		notes = append(notes, "iptables INPUT policy is DROP and no rule accepts IGMP: queries and other hosts' reports are dropped unless accepted elsewhere")
	}
	return rules, notes
}
