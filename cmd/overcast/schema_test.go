package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"overcast/internal/api"
	"overcast/internal/tools/addr"
	"overcast/internal/tools/collect"
	"overcast/internal/tools/mcast"
	"overcast/internal/tools/ping"
)

// jsonTypes is every answer Overcast prints as JSON: the show views and
// the tools' --json.
func jsonTypes() map[string]reflect.Type {
	ts := api.ViewTypes()
	for name, t := range map[string]reflect.Type{
		"tool_send":         reflect.TypeFor[mcast.SendResult](),
		"tool_recv":         reflect.TypeFor[mcast.Stats](),
		"tool_ping":         reflect.TypeFor[ping.Result](),
		"tool_ping_respond": reflect.TypeFor[ping.RespondStats](),
		"tool_doctor":       reflect.TypeFor[doctorReport](),
		"tool_addr":         reflect.TypeFor[[]addr.Info](),
		"tool_addr_check":   reflect.TypeFor[[]addr.Finding](),
		"tool_addr_glop":    reflect.TypeFor[glopAnswer](),
		"tool_addr_ubm":     reflect.TypeFor[ubmAnswer](),
		"tool_collect":      reflect.TypeFor[collect.Stats](),
		"action_clear":      reflect.TypeFor[api.Cleared](),
	} {
		ts[name] = t
	}
	return ts
}

const schemaFile = "../../docs/api.schema.json"

// TestSchemaFile: docs/api.schema.json is what the types say
// (OVERCAST_WRITE_SCHEMA=1 rewrites it after a change; a change of a
// name or type also bumps api.SchemaVersion).
func TestSchemaFile(t *testing.T) {
	want, err := api.Schema(jsonTypes())
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if os.Getenv("OVERCAST_WRITE_SCHEMA") != "" {
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the types: OVERCAST_WRITE_SCHEMA=1 go test ./cmd/overcast -run TestSchemaFile", schemaFile)
	}
}

// TestJSONNamesMeanOneThing: a field name has one JSON type in every view
// and tool (dr is a boolean everywhere, groups a count, local a boolean),
// and timers are seconds, never *_ms or *_ns.
func TestJSONNamesMeanOneThing(t *testing.T) {
	var doc struct {
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	b, err := api.Schema(jsonTypes())
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &doc)
	kinds := map[string]map[string][]string{} // field -> JSON type -> where
	for def, raw := range doc.Defs {
		var s struct {
			Properties map[string]map[string]any `json:"properties"`
		}
		json.Unmarshal(raw, &s)
		for name, p := range s.Properties {
			if !snake.MatchString(name) {
				t.Errorf("%s.%s: JSON names are lower_snake_case", def, name)
			}
			if strings.HasSuffix(name, "_ms") || strings.HasSuffix(name, "_ns") || strings.Contains(name, "_ms_") {
				t.Errorf("%s.%s: a timer in ms or ns: Overcast's JSON has seconds", def, name)
			}
			k := jsonKind(p)
			if kinds[name] == nil {
				kinds[name] = map[string][]string{}
			}
			kinds[name][k] = append(kinds[name][k], def)
		}
	}
	for name, ks := range kinds {
		if len(ks) > 1 {
			var parts []string
			for k, where := range ks {
				sort.Strings(where)
				parts = append(parts, fmt.Sprintf("%s in %s", k, strings.Join(where, ", ")))
			}
			sort.Strings(parts)
			t.Errorf("%q means different things: %s", name, strings.Join(parts, "; "))
		}
	}
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// jsonKind is a property's type, nullability aside.
func jsonKind(p map[string]any) string {
	if _, ok := p["$ref"]; ok {
		return "object" // objects of different kinds may share a name (stats, interfaces)
	}
	if alt, ok := p["anyOf"].([]any); ok && len(alt) > 0 {
		return jsonKind(alt[0].(map[string]any))
	}
	switch t := p["type"].(type) {
	case string:
		if t == "array" {
			return "array of " + jsonKind(p["items"].(map[string]any))
		}
		if t == "number" && p["description"] == "seconds" {
			return "seconds"
		}
		return t
	case []any:
		if p["description"] == "seconds" {
			return "seconds"
		}
		ts := []string{}
		for _, x := range t {
			if x != "null" {
				ts = append(ts, x.(string))
			}
		}
		slices.Sort(ts)
		return strings.Join(ts, "|")
	}
	return "any"
}
