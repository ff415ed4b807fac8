package overlay

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

var key = []byte("overlay-test-key")

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

// Golden bytes, written out by hand from docs/OVERLAY.md; the tag is the
// HMAC-SHA256 of everything before it with the key above, cut to 16.
func TestGolden(t *testing.T) {
	h := Header{Epoch: 0x0102030405060708, Seq: 9}
	cases := []struct {
		name string
		m    Message
		hex  string // without the tag
	}{
		{"hello", Hello{InterestVersion: 3, Sent: 0x10, Echo: 0x20, EchoDelay: 0x30, HoldMillis: 4000},
			"01010020" + "0102030405060708" + "0000000000000009" +
				"0000000000000003" + "0000000000000010" + "0000000000000020" + "00000030" + "00000fa0"},
		{"interest", Interest{From: 1, To: 2, Records: []Record{
			{Group: a("232.8.8.8"), Mode: Include, Sources: []netip.Addr{a("10.0.1.10")}},
			{Group: a("239.192.0.29"), Mode: Exclude}}},
			"01020027" + "0102030405060708" + "0000000000000009" +
				"0000000000000001" + "0000000000000002" + "00" + "0000" + "0002" +
				"e8080808" + "01" + "0001" + "0a00010a" +
				"efc0001d" + "02" + "0000"},
		{"sync", SyncRequest{Known: 7},
			"01030008" + "0102030405060708" + "0000000000000009" + "0000000000000007"},
	}
	for _, c := range cases {
		b := Marshal(key, h, c.m)
		want, _ := hex.DecodeString(c.hex)
		if !bytes.Equal(b[:len(b)-TagLen], want) {
			t.Errorf("%s:\n got %x\nwant %x", c.name, b[:len(b)-TagLen], want)
		}
		if !bytes.Equal(b[len(b)-TagLen:], tag(key, want)) {
			t.Errorf("%s: tag is not the HMAC of the message", c.name)
		}
		gh, m, err := Parse(key, b)
		if err != nil || gh != h || !reflect.DeepEqual(norm(m), norm(c.m)) {
			t.Errorf("%s: parse = %+v %+v %v", c.name, gh, m, err)
		}
	}
}

// norm makes empty source lists compare equal to nil ones.
func norm(m Message) Message {
	if in, ok := m.(Interest); ok {
		for i := range in.Records {
			if len(in.Records[i].Sources) == 0 {
				in.Records[i].Sources = nil
			}
		}
		if len(in.Records) == 0 {
			in.Records = nil
		}
		return in
	}
	return m
}

func TestAuth(t *testing.T) {
	b := Marshal(key, Header{Epoch: 1, Seq: 1}, Hello{Sent: 5})
	if _, _, err := Parse([]byte("another-key"), b); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
	for i := range len(b) {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if _, _, err := Parse(key, c); err == nil {
			t.Fatalf("octet %d flipped: accepted", i)
		}
	}
	if _, _, err := Parse(key, b[:len(b)-1]); err == nil {
		t.Fatal("truncated: accepted")
	}
}

func TestData(t *testing.T) {
	pkt := make([]byte, 28)
	pkt[0] = 0x45
	b := EncodeData(nil, pkt)
	if want := "01000000"; hex.EncodeToString(b[:4]) != want {
		t.Fatalf("header %x", b[:4])
	}
	got, err := DecodeData(b)
	if err != nil || !bytes.Equal(got, pkt) {
		t.Fatalf("decode: %x %v", got, err)
	}
	if _, err := DecodeData(b[:10]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	b[0] = 2
	if _, err := DecodeData(b); !errors.Is(err, ErrVersion) {
		t.Fatalf("version: %v", err)
	}
}

func TestMalformedInterest(t *testing.T) {
	bad := []Interest{
		{Records: []Record{{Group: a("10.0.0.1"), Mode: Include}}},  // not multicast
		{Records: []Record{{Group: a("239.1.1.1"), Mode: Mode(9)}}}, // bad mode
	}
	for _, m := range bad {
		if _, _, err := Parse(key, Marshal(key, Header{}, m)); !errors.Is(err, ErrFormat) {
			t.Errorf("%+v: %v", m, err)
		}
	}
}

func TestPackRecords(t *testing.T) {
	var rs []Record
	for i := range 300 {
		rs = append(rs, Record{Group: netip.AddrFrom4([4]byte{239, 1, byte(i >> 8), byte(i)}), Mode: Include,
			Sources: []netip.Addr{a("10.0.0.1"), a("10.0.0.2")}})
	}
	rs = append(rs, Record{Group: a("239.9.9.9"), Mode: Include, Sources: manySources(1000)})
	parts := PackRecords(rs)
	n := 0
	for _, p := range parts {
		b := Marshal(key, Header{}, Interest{Records: p})
		if len(b) > MaxDatagram {
			t.Fatalf("part of %d octets", len(b))
		}
		n += len(p)
	}
	if n != len(rs) {
		t.Fatalf("%d records packed of %d", n, len(rs))
	}
	if len(PackRecords(nil)) != 1 {
		t.Fatal("no records: want one empty part (a dump of nothing)")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Marshal(key, Header{Epoch: 1, Seq: 2}, Hello{Sent: 1}))
	f.Add(Marshal(key, Header{Epoch: 1, Seq: 3}, Interest{From: 1, To: 2, Records: []Record{{Group: a("239.1.1.1"), Mode: Exclude}}}))
	f.Add(Marshal(key, Header{Epoch: 1, Seq: 4}, SyncRequest{Known: 1}))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Raw input must fail cleanly; signed, it must decode to a
		// message that encodes to the same bytes, or fail cleanly.
		Parse(key, b)
		DecodeData(b)
		Kind(b)
		if len(b) < ctlHeaderLen {
			return
		}
		signed := append(bytes.Clone(b), tag(key, b)...)
		signed[0] = Version
		// Fix the body length so the tag is checked, then re-sign.
		l := len(b) - ctlHeaderLen
		signed[2], signed[3] = byte(l>>8), byte(l)
		signed = append(signed[:len(b)], tag(key, signed[:len(b)])...)
		h, m, err := Parse(key, signed)
		if err != nil {
			return
		}
		again := Marshal(key, h, m)
		if !bytes.Equal(again, signed) {
			t.Fatalf("re-marshal differs:\n in %x\nout %x", signed, again)
		}
	})
}

func manySources(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	return out
}
