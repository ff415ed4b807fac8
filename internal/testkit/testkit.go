// Package testkit is shared by tests only: reading the packet captures kept
// as hex in testdata, and the byte scripts the state-machine fuzzers run.
package testkit

import (
	"bufio"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"overcast/internal/packet/ip4"
)

// Captured is one IPv4 packet from a capture file.
type Captured struct {
	IP      ip4.Header
	Payload []byte
	Summary string // the comment after the hex, if any
}

// Captures reads a capture file: one packet per line as hex, optionally
// followed by " # summary"; lines starting with # and blank lines are
// skipped. A line that is not a valid IPv4 packet fails the test.
func Captures(t testing.TB, path string) []Captured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Captured
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		hx, sum, _ := strings.Cut(line, "#")
		b, err := hex.DecodeString(strings.TrimSpace(hx))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		h, p, err := ip4.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, Captured{h, p, strings.TrimSpace(sum)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Script is a fuzzer's input read as a program: each call takes the next
// bytes, and a finished script reads as zeros.
type Script []byte

// Next returns the next byte.
func (s *Script) Next() byte {
	if len(*s) == 0 {
		return 0
	}
	b := (*s)[0]
	*s = (*s)[1:]
	return b
}

// Pick returns the next byte as an index below n.
func (s *Script) Pick(n int) int { return int(s.Next()) % n }

// Bit returns the next byte's lowest bit.
func (s *Script) Bit() bool { return s.Next()&1 == 1 }

// Take returns the next n bytes (fewer at the end).
func (s *Script) Take(n int) []byte {
	b := (*s)[:min(n, len(*s))]
	*s = (*s)[len(b):]
	return b
}
