package pim

import (
	"encoding/binary"
	"net/netip"
)

// JoinPrune is a Join/Prune message (RFC 7761 section 4.9.5), sent to
// ALL-PIM-ROUTERS and addressed to one upstream neighbour.
type JoinPrune struct {
	Upstream netip.Addr
	Holdtime uint16 // seconds
	Groups   []GroupSet
}

// GroupSet is one group's joined and pruned sources. (*,G) is a joined
// source with WC and RPT set and the RP as address; (S,G,rpt) a pruned
// source with RPT set.
type GroupSet struct {
	Group  Group
	Joins  []Source
	Prunes []Source
}

// Type implements Message.
func (*JoinPrune) Type() uint8 { return TypeJoinPrune }

func parseJoinPrune(b []byte) (*JoinPrune, error) {
	r := &reader{b: b}
	up, err := r.unicast("upstream neighbor")
	if err != nil {
		return nil, err
	}
	if _, err := r.u8("reserved"); err != nil {
		return nil, err
	}
	ng, err := r.u8("number of groups")
	if err != nil {
		return nil, err
	}
	hold, err := r.u16("holdtime")
	if err != nil {
		return nil, err
	}
	jp := &JoinPrune{Upstream: up, Holdtime: hold}
	for range int(ng) {
		g, err := r.group("group")
		if err != nil {
			return nil, err
		}
		nj, err := r.u16("number of joined sources")
		if err != nil {
			return nil, err
		}
		np, err := r.u16("number of pruned sources")
		if err != nil {
			return nil, err
		}
		// Check the counts against what is left before allocating.
		if err := r.need((int(nj)+int(np))*encSourceLen, "sources"); err != nil {
			return nil, err
		}
		gs := GroupSet{Group: g}
		for range int(nj) {
			s, err := r.source("joined source")
			if err != nil {
				return nil, err
			}
			gs.Joins = append(gs.Joins, s)
		}
		for range int(np) {
			s, err := r.source("pruned source")
			if err != nil {
				return nil, err
			}
			gs.Prunes = append(gs.Prunes, s)
		}
		jp.Groups = append(jp.Groups, gs)
	}
	return jp, nil
}

// Len is the encoded length of the message, header included.
func (m *JoinPrune) Len() int {
	n := HeaderLen + encUnicastLen + 4
	for _, g := range m.Groups {
		n += groupSetLen(len(g.Joins), len(g.Prunes))
	}
	return n
}

func groupSetLen(joins, prunes int) int { return encGroupLen + 4 + (joins+prunes)*encSourceLen }

// Marshal encodes the message. It does not split: see Split.
func (m *JoinPrune) Marshal() []byte {
	b := make([]byte, HeaderLen, m.Len())
	b = appendUnicast(b, m.Upstream)
	b = append(b, 0, byte(len(m.Groups)))
	b = binary.BigEndian.AppendUint16(b, m.Holdtime)
	for _, g := range m.Groups {
		b = appendGroup(b, g.Group)
		b = binary.BigEndian.AppendUint16(b, uint16(len(g.Joins)))
		b = binary.BigEndian.AppendUint16(b, uint16(len(g.Prunes)))
		for _, s := range g.Joins {
			b = appendSource(b, s)
		}
		for _, s := range g.Prunes {
			b = appendSource(b, s)
		}
	}
	return finish(TypeJoinPrune, b, len(b))
}

// Split packs group sets for one upstream neighbour into as few messages
// as fit in maxLen bytes of PIM message each (the IP MTU less the IP
// header), at most 255 groups per message. A group whose sources do not
// fit in one message is carried over several, each with the same group;
// RFC 7761 section 4.9.5 allows a group to appear in more than one
// message. Prunes of a group stay in the same message as its joins where
// they fit, since (*,G) joins and (S,G,rpt) prunes must be processed
// together (section 4.5.7); when a single group's set is too big for one
// message, the (*,G) join is repeated in every part.
func Split(upstream netip.Addr, holdtime uint16, sets []GroupSet, maxLen int) []*JoinPrune {
	base := HeaderLen + encUnicastLen + 4
	perMsg := (maxLen - base - encGroupLen - 4) / encSourceLen // sources that fit with one group
	if perMsg < 1 {
		perMsg = 1
	}
	var out []*JoinPrune
	cur := &JoinPrune{Upstream: upstream, Holdtime: holdtime}
	size := base
	flush := func() {
		if len(cur.Groups) > 0 {
			out = append(out, cur)
		}
		cur = &JoinPrune{Upstream: upstream, Holdtime: holdtime}
		size = base
	}
	for _, gs := range sets {
		n := groupSetLen(len(gs.Joins), len(gs.Prunes))
		if size+n <= maxLen && len(cur.Groups) < 255 {
			cur.Groups = append(cur.Groups, gs)
			size += n
			continue
		}
		if base+n <= maxLen {
			flush()
			cur.Groups = append(cur.Groups, gs)
			size += n
			continue
		}
		// Too big for any one message: cut the sources into chunks, and
		// repeat the (*,G) join in each, so every (S,G,rpt) prune travels
		// with it.
		flush()
		var star, joins []Source
		for _, j := range gs.Joins {
			if j.WC {
				star = append(star, j)
			} else {
				joins = append(joins, j)
			}
		}
		prunes := gs.Prunes
		for first := true; first || len(joins)+len(prunes) > 0; first = false {
			part := GroupSet{Group: gs.Group, Joins: append([]Source(nil), star...)}
			room := max(perMsg-len(star), 1)
			k := min(room, len(joins))
			part.Joins, joins = append(part.Joins, joins[:k]...), joins[k:]
			room -= k
			k = min(room, len(prunes))
			part.Prunes, prunes = prunes[:k], prunes[k:]
			cur.Groups = append(cur.Groups, part)
			flush()
		}
	}
	flush()
	return out
}
