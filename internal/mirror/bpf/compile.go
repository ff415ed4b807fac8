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
	// otherwise it always returns TC_ACT_OK (production traffic passes
	// untouched) after acting on accepted packets.
	Verdicts bool
	// Deliver: an accepted packet is cloned to this device (a collect_md
	// VXLAN device) with a tunnel key naming the collector and the
	// session's VNI; the original goes on untouched. Zero: no delivery.
	Ifindex   int
	Collector [4]byte // IPv4
	VNI       uint32
}

const stKey = -80 // struct bpf_tunnel_key up to tunnel_label: 24 octets

// Stack layout (offsets from R10).
const (
	stHdr   = -32 // 20 octets of IPv4 header
	stPorts = -40 // 4 octets: source and destination port, network order
	stSport = -44 // u32, host order
	stDport = -48 // u32, host order
	stHas   = -52 // u32: 1 when the packet has ports
)

const ethHeader = 14

// Compile returns the program's instructions.
func Compile(f mirror.Filter, o Options) (asm.Instructions, error) {
	rules := f.Rules()
	var p asm.Instructions
	emit := func(ins ...asm.Instruction) { p = append(p, ins...) }

	emit(
		asm.Mov.Reg(asm.R6, asm.R1), // ctx
		asm.Mov.Imm(asm.R0, 0),
		asm.StoreMem(asm.RFP, stHas, asm.R0, asm.Word),
		asm.StoreMem(asm.RFP, stSport, asm.R0, asm.Word),
		asm.StoreMem(asm.RFP, stDport, asm.R0, asm.Word),
		// IPv4 only: skb->protocol (network order) is ETH_P_IP.
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // offsetof(struct __sk_buff, protocol)
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
	for i, r := range rules {
		next := fmt.Sprintf("r%d", i+1)
		label := fmt.Sprintf("r%d", i)
		start := len(p)
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
		unconditional := len(p) == start
		code := int32(VerdictReject)
		target := "reject"
		if r.Action == mirror.Accept {
			code, target = VerdictAccept, "accept"
		}
		emit(asm.Mov.Imm(asm.R0, code|int32(i)), asm.Ja.Label(target))
		p[start] = p[start].WithSymbol(label)
		if unconditional {
			rules = rules[:i+1] // it decides every packet: later rules are never reached
			break
		}
	}
	// After the last rule (and for a frame that is not IPv4): no match.
	last := fmt.Sprintf("r%d", len(rules))
	p = relabel(p, "rules", "r0")
	p = relabel(p, "none", last)
	emit(asm.Mov.Imm(asm.R0, 0).WithSymbol(last))
	if o.Verdicts {
		p = relabel(relabel(p, "accept", "done"), "reject", "done")
	} else {
		p = relabel(p, "reject", last) // R0 back to TC_ACT_OK
		if referenced(p, "accept") {
			emit(asm.Ja.Label("done"))
			if o.Ifindex > 0 {
				emit(deliver(o)...) // ends with R0 = TC_ACT_OK: production passes
			} else {
				emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("accept"))
			}
		}
	}
	emit(asm.Return().WithSymbol("done"))
	return p, nil
}

// deliver sets the tunnel key (VNI, collector, TTL 64) and clones the
// packet to the VXLAN device; its result is ignored: production first.
func deliver(o Options) []asm.Instruction {
	remote := binary.BigEndian.Uint32(o.Collector[:]) // the helper wants host order
	ins := []asm.Instruction{asm.Mov.Imm(asm.R2, 0).WithSymbol("accept")}
	for off := int16(0); off < 24; off += 8 {
		ins = append(ins, asm.StoreMem(asm.RFP, stKey+off, asm.R2, asm.DWord))
	}
	ins = append(ins,
		asm.Mov.Imm32(asm.R2, int32(o.VNI)),
		asm.StoreMem(asm.RFP, stKey, asm.R2, asm.Word),
		asm.Mov.Imm32(asm.R2, int32(remote)),
		asm.StoreMem(asm.RFP, stKey+4, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R2, 64),
		asm.StoreMem(asm.RFP, stKey+21, asm.R2, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey),
		asm.Mov.Imm(asm.R3, 24),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnSkbSetTunnelKey.Call(),
		asm.JNE.Imm(asm.R0, 0, "done0"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, int32(o.Ifindex)),
		asm.Mov.Imm(asm.R3, 0), // egress of the VXLAN device
		asm.FnCloneRedirect.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("done0"), // TC_ACT_OK whatever the helpers said
	)
	return ins
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
