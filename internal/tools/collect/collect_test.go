package collect

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

func vxlan(vni uint32, inner []byte) []byte {
	b := make([]byte, 8, 8+len(inner))
	b[0] = 0x08
	binary.BigEndian.PutUint32(b[4:], vni<<8)
	return append(b, inner...)
}

func TestParseVXLAN(t *testing.T) {
	frame := bytes.Repeat([]byte{0xab}, 60)
	vni, inner, ok := ParseVXLAN(vxlan(4242, frame))
	if !ok || vni != 4242 || !bytes.Equal(inner, frame) {
		t.Fatalf("%d %x %v", vni, inner, ok)
	}
	noI := vxlan(1, frame)
	noI[0] = 0
	for _, bad := range [][]byte{nil, vxlan(1, frame[:13]), noI} {
		if _, _, ok := ParseVXLAN(bad); ok {
			t.Fatalf("%x accepted", bad)
		}
	}
}

func FuzzParseVXLAN(f *testing.F) {
	f.Add(vxlan(7, make([]byte, 64)))
	f.Fuzz(func(t *testing.T, b []byte) {
		vni, inner, ok := ParseVXLAN(b)
		if ok && (vni >= 1<<24 || len(inner) != len(b)-8 || len(inner) < 14) {
			t.Fatalf("%d %d", vni, len(inner))
		}
	})
}

// Run on loopback: datagrams of two VNIs become two pcapng files with
// their frames; junk is counted, not written; a VNI filter filters.
func TestRunWritesPerSession(t *testing.T) {
	dir := t.TempDir()
	addr := make(chan string, 1)
	done := make(chan Stats, 1)
	go func() {
		st, err := Run(context.Background(), Config{Listen: "127.0.0.1:0", PCAPDir: dir, VNIs: []uint32{1, 2}, Count: 5}, func(a string) { addr <- a })
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	c, err := net.Dial("udp4", <-addr)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(n byte) []byte { return append(bytes.Repeat([]byte{n}, 14), 'x', n) }
	for _, d := range [][]byte{vxlan(1, frame(1)), []byte("junk"), vxlan(2, frame(2)), vxlan(3, frame(3)), vxlan(1, frame(4)), vxlan(2, frame(5)), vxlan(1, frame(6))} {
		c.Write(d)
		time.Sleep(5 * time.Millisecond)
	}
	st := <-done
	if st.Malformed != 1 || st.Filtered != 1 || len(st.Sessions) != 2 || st.Sessions[0].Packets != 3 || st.Sessions[1].Packets != 2 {
		t.Fatalf("%+v", st)
	}
	for _, s := range st.Sessions {
		f, err := os.Open(s.File)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			b, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			if len(b) != 16 || b[15] == 3 {
				t.Fatalf("%s: frame %x", s.File, b)
			}
			n++
		}
		f.Close()
		if uint64(n) != s.Packets || filepath.Dir(s.File) != dir {
			t.Fatalf("%s: %d frames, account says %d", s.File, n, s.Packets)
		}
	}
}
