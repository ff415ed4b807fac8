package bpf

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"
)

// Service is a tap service's entry in the services map, read by the
// delivery program for the clones that carry its index in their mark.
type Service struct {
	Tunnel    bool    // set a tunnel key: Remote and VNI (a collect_md VXLAN device)
	StripVLAN bool    // pop the copy's VLAN tag
	SetMAC    bool    // rewrite the copy's destination MAC to MAC
	VNI       uint32  //
	Remote    [4]byte // the collector, IPv4
	Truncate  uint32  // cut the copy to this many octets (the Ethernet frame); 0: whole
	MAC       [6]byte
}

// ServiceSize is the services map's value size.
const ServiceSize = 24

// MaxServices is the services map's size; index 0xffff is CopyMark's.
const MaxServices = 4096

// Service entry layout.
const (
	svFlags  = 0
	svVNI    = 4
	svRemote = 8
	svTrunc  = 12
	svMAC    = 16

	flagTunnel = 1
	flagStrip  = 2
	flagMAC    = 4
)

// MarshalBinary is the map value (host order, as the program reads it).
func (s Service) MarshalBinary() ([]byte, error) {
	b := make([]byte, ServiceSize)
	var fl uint32
	if s.Tunnel {
		fl |= flagTunnel
	}
	if s.StripVLAN {
		fl |= flagStrip
	}
	if s.SetMAC {
		fl |= flagMAC
	}
	binary.NativeEndian.PutUint32(b[svFlags:], fl)
	binary.NativeEndian.PutUint32(b[svVNI:], s.VNI)
	binary.NativeEndian.PutUint32(b[svRemote:], binary.BigEndian.Uint32(s.Remote[:])) // the helper wants host order
	binary.NativeEndian.PutUint32(b[svTrunc:], s.Truncate)
	copy(b[svMAC:], s.MAC[:])
	return b, nil
}

// CompileDelivery returns the program on a delivery device's egress (the
// collect_md VXLAN device, or a monitor's port). A clone marked
// MarkBase|service gets its service's rewrites (VLAN tag popped,
// destination MAC, truncation, tunnel key), is marked CopyMark and goes
// on; anything else passes untouched (TCX_NEXT). services is the fd of
// the services array map.
func CompileDelivery(services int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, skbMark, asm.Word),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.RSh.Imm32(asm.R3, 16),
		asm.JNE.Imm32(asm.R3, MarkBase>>16, "pass"),
		asm.And.Imm32(asm.R2, 0xffff),
		asm.JEq.Imm32(asm.R2, 0xffff, "pass"), // a copy already delivered
		asm.StoreMem(asm.RFP, stMark, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, services),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stMark),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"), // a clone of a service just removed
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R8, asm.R7, svFlags, asm.Word),

		asm.Mov.Reg(asm.R2, asm.R8),
		asm.And.Imm(asm.R2, flagStrip),
		asm.JEq.Imm(asm.R2, 0, "mac"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnSkbVlanPop.Call(),

		asm.Mov.Reg(asm.R2, asm.R8).WithSymbol("mac"),
		asm.And.Imm(asm.R2, flagMAC),
		asm.JEq.Imm(asm.R2, 0, "trunc"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Add.Imm(asm.R3, svMAC),
		asm.Mov.Imm(asm.R4, 6),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),

		asm.LoadMem(asm.R2, asm.R7, svTrunc, asm.Word).WithSymbol("trunc"),
		asm.JEq.Imm(asm.R2, 0, "tunnel"),
		asm.LoadMem(asm.R3, asm.R6, skbLen, asm.Word),
		asm.JLE.Reg(asm.R3, asm.R2, "tunnel"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnSkbChangeTail.Call(),

		asm.Mov.Reg(asm.R2, asm.R8).WithSymbol("tunnel"),
		asm.And.Imm(asm.R2, flagTunnel),
		asm.JEq.Imm(asm.R2, 0, "marked"),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.RFP, stKey, asm.R2, asm.DWord),
		asm.StoreMem(asm.RFP, stKey+8, asm.R2, asm.DWord),
		asm.StoreMem(asm.RFP, stKey+16, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, svVNI, asm.Word),
		asm.StoreMem(asm.RFP, stKey, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, svRemote, asm.Word),
		asm.StoreMem(asm.RFP, stKey+4, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R2, 64),
		asm.StoreMem(asm.RFP, stKey+21, asm.R2, asm.Byte), // TTL
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey),
		asm.Mov.Imm(asm.R3, 24),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnSkbSetTunnelKey.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),

		asm.Mov.Imm32(asm.R2, CopyMark).WithSymbol("marked"),
		asm.StoreMem(asm.R6, skbMark, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, 0), // TCX_PASS: out it goes
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("drop"), // TCX_DROP: a clone only
		asm.Return(),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("pass"),
		asm.Return(),
	}
}
