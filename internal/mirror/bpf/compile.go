// Package bpf compiles a tap flow's rules (mirror.Filter) into a tc
// classifier in eBPF, written with cilium/ebpf's asm package so the build
// needs no clang. The program reads the packet's IPv4 header and ports
// once onto its stack, then tries the rules in order, as the reference
// classifier (mirror.Filter.Classify) does; the tests run both on the same
// packets in the kernel (BPF_PROG_TEST_RUN) and require the same verdict.
package bpf

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/asm"

	"overcast/internal/mirror"
)

// Verdict codes the program returns in verdict mode (Options.Verdicts):
// accept|index or reject|index of the rule that decided, 0 for none.
const (
	VerdictAccept = 0x10000
	VerdictReject = 0x20000
)

// Options say what the program does with a packet the rules accept.
type Options struct {
	// Verdicts makes the program return the deciding rule (tests);
	// otherwise it always returns TCX_NEXT (-1: the next program on the
	// hook runs, and the packet passes when none is left) after acting on
	// accepted packets: production traffic is never dropped or changed.
	Verdicts bool
	// Ifindex: an accepted packet is cloned to the egress of this device
	// (a collect_md VXLAN device, or a monitor's port) carrying the mark
	// MarkBase|Service; the device's delivery program (CompileDelivery)
	// finds the service's tunnel key, truncation and rewrites by that
	// index. Zero: no delivery (counted only).
	Ifindex int
	Service uint16
	// Counters is the fd of a per-CPU array with one value of NumCounters
	// u64 (the tap flow's); 0: no counting.
	Counters int
	// Rate limit: a GCRA per service, its state (a u64) in the array map
	// RateMap at index Service: at most RatePPS copies, or RateBPS bits of
	// copies, per second, bursts up to BurstNS of the rate. Zero: none.
	// Across CPUs the state is updated without a lock: a race can let a
	// copy more through, never stop production traffic.
	RateMap          int
	RatePPS, RateBPS uint64
	BurstNS          uint64
	// Truncate is the service's copy length, for the truncated counter and
	// the bytes counted (the delivery program cuts). Zero: whole packets.
	Truncate uint32
}

// MarkBase marks a clone in flight to its delivery program (low 16 bits:
// the service); CopyMark marks a delivered copy. No tap program mirrors a
// packet marked so (a copy leaving by a mirrored underlay port).
const (
	MarkBase = 0x4f560000
	MarkMask = 0xffff0000
	CopyMark = MarkBase | 0xffff
)

// Counter indices in a tap flow's counters value.
const (
	CtrMirrored    = iota // copies handed to the delivery device
	CtrBytes              // bytes of those copies (after truncation)
	CtrSkipped            // packets no accept rule selected
	CtrRateDropped        // selected, but over the service's rate
	CtrTruncated          // copies cut to the service's length
	CtrSendErrors         // the clone could not be made or queued
	NumCounters
)

// TCXNext is what a production program returns (-1): on to the next.
const TCXNext = 0xffffffff

// Stack layout (offsets from R10).
const (
	stHdr   = -32  // 20 octets of IPv4 header
	stPorts = -40  // 4 octets: source and destination port, network order
	stSport = -44  // u32, host order
	stDport = -48  // u32, host order
	stHas   = -52  // u32: 1 when the packet has ports
	stZero  = -56  // u32 0: a map key
	stMark  = -60  // u32: the packet's mark, restored after the clone; a map key before
	stPtr   = -72  // u64: a map value's address across a helper call
	stKey   = -104 // struct bpf_tunnel_key up to tunnel_label: 24 octets (delivery)
)

// __sk_buff offsets.
const (
	skbLen      = 0
	skbMark     = 8
	skbProtocol = 16
)

const ethHeader = 14

// builder numbers local labels.
type builder struct {
	p asm.Instructions
	n int
}

func (b *builder) emit(ins ...asm.Instruction) { b.p = append(b.p, ins...) }

func (b *builder) label(prefix string) string { b.n++; return fmt.Sprintf("%s_%d", prefix, b.n) }

// add adds the immediate n, or register r when n is 0, to counter i
// (R7 holds the counters' address, or 0 when there are none).
func (b *builder) add(i int, n int32, r asm.Register) {
	skip := b.label("nocount")
	ins := asm.Add.Imm(asm.R1, n)
	if n == 0 {
		ins = asm.Add.Reg(asm.R1, r)
	}
	b.emit(
		asm.JEq.Imm(asm.R7, 0, skip),
		asm.LoadMem(asm.R1, asm.R7, int16(i*8), asm.DWord),
		ins,
		asm.StoreMem(asm.R7, int16(i*8), asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0).WithSymbol(skip),
	)
}

// Compile returns the program's instructions.
func Compile(f mirror.Filter, o Options) (asm.Instructions, error) {
	rules := f.Rules()
	b := &builder{}
	emit := b.emit
	emit(
		asm.Mov.Reg(asm.R6, asm.R1), // ctx
		asm.Mov.Imm(asm.R0, 0),
		asm.Mov.Imm(asm.R7, 0), // the counters, when there are
		asm.StoreMem(asm.RFP, stZero, asm.R0, asm.Word),
		asm.StoreMem(asm.RFP, stHas, asm.R0, asm.Word),
		asm.StoreMem(asm.RFP, stSport, asm.R0, asm.Word),
		asm.StoreMem(asm.RFP, stDport, asm.R0, asm.Word),
	)
	if !o.Verdicts {
		emit(
			// A copy Overcast made is never mirrored again.
			asm.LoadMem(asm.R2, asm.R6, skbMark, asm.Word),
			asm.RSh.Imm32(asm.R2, 16),
			asm.JEq.Imm32(asm.R2, MarkBase>>16, "pass"),
		)
		if o.Counters > 0 {
			emit(
				asm.LoadMapPtr(asm.R1, o.Counters),
				asm.Mov.Reg(asm.R2, asm.RFP),
				asm.Add.Imm(asm.R2, stZero),
				asm.FnMapLookupElem.Call(),
				asm.Mov.Reg(asm.R7, asm.R0),
			)
		}
	}
	emit(
		// IPv4 only: skb->protocol (network order) is ETH_P_IP.
		asm.LoadMem(asm.R2, asm.R6, skbProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, int32(binary.LittleEndian.Uint16([]byte{0x08, 0x00})), "none"),
		// bpf_skb_load_bytes(skb, 14, fp+stHdr, 20)
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, ethHeader),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stHdr),
		asm.Mov.Imm(asm.R4, 20),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "none"),
		// version 4
		asm.LoadMem(asm.R2, asm.RFP, stHdr, asm.Byte),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.RSh.Imm(asm.R3, 4),
		asm.JNE.Imm(asm.R3, 4, "none"),
		// a whole header: IHL at least 5, the frame at least 14 + IHL*4
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.And.Imm(asm.R3, 0x0f),
		asm.JLT.Imm(asm.R3, 5, "none"),
		asm.LSh.Imm(asm.R3, 2),
		asm.Add.Imm(asm.R3, ethHeader),
		asm.LoadMem(asm.R4, asm.R6, skbLen, asm.Word),
		asm.JGT.Reg(asm.R3, asm.R4, "none"),
		// ports: TCP or UDP, first fragment, at 14 + IHL*4
		asm.LoadMem(asm.R3, asm.RFP, stHdr+9, asm.Byte),
		asm.JEq.Imm(asm.R3, 6, "ports"),
		asm.JEq.Imm(asm.R3, 17, "ports"),
		asm.Ja.Label("rules"),
		asm.LoadMem(asm.R4, asm.RFP, stHdr+6, asm.Half).WithSymbol("ports"),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.And.Imm(asm.R4, 0x1fff),
		asm.JNE.Imm(asm.R4, 0, "rules"),
		asm.And.Imm(asm.R2, 0x0f),
		asm.LSh.Imm(asm.R2, 2),
		asm.Add.Imm(asm.R2, ethHeader),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stPorts),
		asm.Mov.Imm(asm.R4, 4),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "rules"),
		asm.LoadMem(asm.R2, asm.RFP, stPorts, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.StoreMem(asm.RFP, stSport, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, stPorts+2, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.StoreMem(asm.RFP, stDport, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R2, 1),
		asm.StoreMem(asm.RFP, stHas, asm.R2, asm.Word),
		asm.Ja.Label("rules"),
	)
	other := "" // where frames that are not IPv4 go
	for i, r := range rules {
		next := fmt.Sprintf("r%d", i+1)
		label := fmt.Sprintf("r%d", i)
		start := len(b.p)
		if r.Proto != 0 {
			emit(asm.LoadMem(asm.R2, asm.RFP, stHdr+9, asm.Byte), asm.JNE.Imm(asm.R2, int32(r.Proto), next))
		}
		if r.Src.IsValid() && r.Src.Bits() > 0 {
			emit(prefixMatch(r.Src.Addr().As4(), r.Src.Bits(), stHdr+12, next)...)
		}
		if r.Dst.IsValid() && r.Dst.Bits() > 0 {
			emit(prefixMatch(r.Dst.Addr().As4(), r.Dst.Bits(), stHdr+16, next)...)
		}
		if !r.SrcPorts.Any() || !r.DstPorts.Any() {
			emit(asm.LoadMem(asm.R2, asm.RFP, stHas, asm.Word), asm.JEq.Imm(asm.R2, 0, next))
			for _, x := range []struct {
				pr  mirror.PortRange
				off int16
			}{{r.SrcPorts, stSport}, {r.DstPorts, stDport}} {
				if x.pr.Any() {
					continue
				}
				emit(asm.LoadMem(asm.R2, asm.RFP, x.off, asm.Word),
					asm.JLT.Imm(asm.R2, int32(x.pr.Lo), next),
					asm.JGT.Imm(asm.R2, int32(x.pr.Hi), next))
			}
		}
		unconditional := len(b.p) == start
		code := int32(VerdictReject)
		target := "reject"
		if r.Action == mirror.Accept {
			code, target = VerdictAccept, "accept"
		}
		emit(asm.Mov.Imm(asm.R0, code|int32(i)), asm.Ja.Label(target))
		b.p[start] = b.p[start].WithSymbol(label)
		if unconditional {
			rules = rules[:i+1] // it decides every packet: later rules are never reached
			other = label
			break
		}
	}
	// After the last rule: no match. A frame that is not IPv4 (or not a
	// whole header) is decided by the first rule without match fields.
	last := fmt.Sprintf("r%d", len(rules))
	if other == "" {
		other = last
	}
	b.p = relabel(b.p, "rules", "r0")
	b.p = relabel(b.p, "none", other)
	if o.Verdicts {
		if referenced(b.p, last) || len(rules) == 0 {
			emit(asm.Mov.Imm(asm.R0, 0).WithSymbol(last))
		}
		b.p = relabel(relabel(b.p, "accept", "done"), "reject", "done")
		emit(asm.Return().WithSymbol("done"))
		return b.p, nil
	}
	b.p = relabel(b.p, "reject", last)
	if referenced(b.p, last) || len(rules) == 0 { // not after a rule that decides everything
		emit(asm.Mov.Imm(asm.R0, 0).WithSymbol(last))
		b.add(CtrSkipped, 1, 0)
		emit(asm.Ja.Label("pass"))
	}
	if referenced(b.p, "accept") {
		b.accepted(o)
	}
	emit(
		asm.Mov.Imm(asm.R0, -1).WithSymbol("pass"), // TCX_NEXT, whatever happened: production first
		asm.Return(),
	)
	return b.p, nil
}

// accepted: the copy's length (R8), the rate limit, the clone carrying
// the service's mark, the packet's own mark restored, the counters.
func (b *builder) accepted(o Options) {
	emit := b.emit
	emit(asm.LoadMem(asm.R8, asm.R6, skbLen, asm.Word).WithSymbol("accept"))
	if o.Truncate > 0 {
		emit(
			asm.JLE.Imm(asm.R8, int32(o.Truncate), "fits"),
			asm.Mov.Imm(asm.R8, int32(o.Truncate)),
			asm.Mov.Imm(asm.R1, 0).WithSymbol("fits"),
		)
	}
	if o.RateMap > 0 && (o.RatePPS > 0 || o.RateBPS > 0) {
		// GCRA: T per copy; TAT = max(TAT, now); over when TAT-now > burst; else TAT += T.
		if o.RatePPS > 0 {
			emit(asm.LoadImm(asm.R9, int64(1e9/o.RatePPS), asm.DWord))
		} else {
			emit(
				asm.Mov.Reg(asm.R9, asm.R8),
				asm.LoadImm(asm.R2, 8e9, asm.DWord),
				asm.Mul.Reg(asm.R9, asm.R2),
				asm.LoadImm(asm.R2, int64(o.RateBPS), asm.DWord),
				asm.Div.Reg(asm.R9, asm.R2),
			)
		}
		emit(
			asm.Mov.Imm(asm.R2, int32(o.Service)),
			asm.StoreMem(asm.RFP, stMark, asm.R2, asm.Word),
			asm.LoadMapPtr(asm.R1, o.RateMap),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, stMark),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "send"),
			asm.StoreMem(asm.RFP, stPtr, asm.R0, asm.DWord),
			asm.FnKtimeGetNs.Call(),
			asm.LoadMem(asm.R3, asm.RFP, stPtr, asm.DWord),
			asm.LoadMem(asm.R1, asm.R3, 0, asm.DWord), // TAT
			asm.JGT.Reg(asm.R1, asm.R0, "later"),
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.Mov.Reg(asm.R2, asm.R1).WithSymbol("later"),
			asm.Sub.Reg(asm.R2, asm.R0),
			asm.LoadImm(asm.R4, int64(o.BurstNS), asm.DWord),
			asm.JGT.Reg(asm.R2, asm.R4, "over"),
			asm.Add.Reg(asm.R1, asm.R9),
			asm.StoreMem(asm.R3, 0, asm.R1, asm.DWord),
			asm.Ja.Label("send"),
			asm.Mov.Imm(asm.R1, 0).WithSymbol("over"),
		)
		b.add(CtrRateDropped, 1, 0)
		emit(asm.Ja.Label("pass"))
	}
	if o.Ifindex <= 0 {
		emit(asm.Mov.Imm(asm.R1, 0).WithSymbol("send"))
	} else {
		emit(
			asm.LoadMem(asm.R2, asm.R6, skbMark, asm.Word).WithSymbol("send"),
			asm.StoreMem(asm.RFP, stMark, asm.R2, asm.Word),
			asm.Mov.Imm32(asm.R2, int32(MarkBase|uint32(o.Service))),
			asm.StoreMem(asm.R6, skbMark, asm.R2, asm.Word),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, int32(o.Ifindex)),
			asm.Mov.Imm(asm.R3, 0), // to the device's egress
			asm.FnCloneRedirect.Call(),
			asm.LoadMem(asm.R2, asm.RFP, stMark, asm.Word),
			asm.StoreMem(asm.R6, skbMark, asm.R2, asm.Word),
			asm.JNE.Imm(asm.R0, 0, "senderr"),
		)
	}
	b.add(CtrMirrored, 1, 0)
	b.add(CtrBytes, 0, asm.R8)
	if o.Truncate > 0 {
		emit(
			asm.LoadMem(asm.R2, asm.R6, skbLen, asm.Word),
			asm.JLE.Imm(asm.R2, int32(o.Truncate), "pass"),
		)
		b.add(CtrTruncated, 1, 0)
	}
	emit(asm.Ja.Label("pass"))
	if o.Ifindex > 0 {
		emit(asm.Mov.Imm(asm.R1, 0).WithSymbol("senderr"))
		b.add(CtrSendErrors, 1, 0)
		emit(asm.Ja.Label("pass"))
	}
}

func referenced(p asm.Instructions, label string) bool {
	for _, ins := range p {
		if ins.Reference() == label {
			return true
		}
	}
	return false
}

// relabel points jumps to label at another label.
func relabel(p asm.Instructions, from, to string) asm.Instructions {
	for i := range p {
		if p[i].Reference() == from {
			p[i] = p[i].WithReference(to)
		}
	}
	return p
}

// prefixMatch jumps to next unless the address at off (network order,
// read as a little-endian word) is in the prefix.
func prefixMatch(a [4]byte, bits int, off int16, next string) []asm.Instruction {
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-bits))
	mask := binary.LittleEndian.Uint32(m[:])
	want := binary.LittleEndian.Uint32(a[:]) & mask
	return []asm.Instruction{
		asm.LoadMem(asm.R2, asm.RFP, off, asm.Word),
		asm.And.Imm32(asm.R2, int32(mask)),
		asm.JNE.Imm32(asm.R2, int32(want), next),
	}
}
