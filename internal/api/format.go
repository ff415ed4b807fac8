package api

import (
	"fmt"
	"strconv"
)

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func fmtScan(s string, f *float64) (int, error) { return fmt.Sscan(s, f) }

func fmtHMS(s int) string {
	if s >= 7*86400 {
		return fmt.Sprintf("%dw%dd", s/(7*86400), s%(7*86400)/86400)
	}
	if s >= 86400 {
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s%3600/60, s%60)
}
