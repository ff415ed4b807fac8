package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Schema is the JSON Schema (2020-12) of what Marshal prints for the given
// named types: every struct a definition under $defs, every field
// required, optional ones (omitempty) also null, Durations numbers of
// seconds. docs/api.schema.json is this over every view and tool
// (cmd/overcast's TestSchemaFile keeps the file true to the types).
func Schema(named map[string]reflect.Type) ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	for name, t := range named {
		s, err := g.of(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		g.defs[name] = s
	}
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         fmt.Sprintf("https://overcast.invalid/api/v%d.schema.json", SchemaVersion),
		"title":       fmt.Sprintf("Overcast JSON, schema version %d: every show view (show ... --json, the API) and tool (--json)", SchemaVersion),
		"description": "Generated from the Go types (internal/api/schema.go). Every field is present; absent values are null; lists are [] when empty; timers are seconds; counters are integers.",
		"$defs":       g.defs,
	}
	return json.MarshalIndent(doc, "", "  ")
}

type schemaGen struct{ defs map[string]any }

var durationType = reflect.TypeFor[Duration]()

func (g *schemaGen) of(t reflect.Type) (map[string]any, error) {
	if t == durationType {
		return map[string]any{"type": "number", "description": "seconds"}, nil
	}
	if t == reflect.TypeFor[time.Duration]() {
		return nil, fmt.Errorf("a time.Duration: timers are seconds in Overcast's JSON (use api.Duration or a seconds type)")
	}
	if t == reflect.TypeFor[json.RawMessage]() || t.Kind() == reflect.Interface {
		return map[string]any{}, nil
	}
	if t.Implements(textMarshaler) && t.Kind() != reflect.Pointer {
		return map[string]any{"type": []string{"string", "null"}, "description": "text (an address or prefix); null when absent"}, nil
	}
	if t.Implements(marshaler) {
		// A type with its own encoding says what it prints.
		if s, ok := reflect.New(t).Elem().Interface().(interface{ JSONSchema() map[string]any }); ok {
			return s.JSONSchema(), nil
		}
		return nil, fmt.Errorf("%v marshals itself and has no JSONSchema method", t)
	}
	switch t.Kind() {
	case reflect.Pointer:
		s, err := g.of(t.Elem())
		if err != nil {
			return nil, err
		}
		return nullable(s), nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}, nil
		}
		s, err := g.of(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": s}, nil
	case reflect.Map:
		s, err := g.of(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": s}, nil
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.object(t)
		}
		name = t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:] + "." + name
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = map[string]any{} // recursion guard
			s, err := g.object(t)
			if err != nil {
				return nil, err
			}
			g.defs[name] = s
		}
		return map[string]any{"$ref": "#/$defs/" + name}, nil
	}
	return nil, fmt.Errorf("no schema for %v", t)
}

func nullable(s map[string]any) map[string]any {
	if t, ok := s["type"].(string); ok && len(s) <= 2 {
		c := map[string]any{}
		for k, v := range s {
			c[k] = v
		}
		c["type"] = []string{t, "null"}
		return c
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

func (g *schemaGen) object(t reflect.Type) (map[string]any, error) {
	props := map[string]any{}
	if err := g.props(t, props); err != nil {
		return nil, err
	}
	req := make([]string, 0, len(props))
	for k := range props {
		req = append(req, k)
	}
	sort.Strings(req)
	return map[string]any{"type": "object", "properties": props, "required": req, "additionalProperties": false}, nil
}

func (g *schemaGen) props(t reflect.Type, props map[string]any) error {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, optional, skip := jsonName(f)
		if skip {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			if err := g.props(f.Type, props); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		s, err := g.of(f.Type)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		if optional && f.Type.Kind() != reflect.Slice && f.Type.Kind() != reflect.Map {
			s = nullable(s)
		}
		props[name] = s
	}
	return nil
}

// ViewSchemaName is the $defs entry for a view's answer: its path without
// /v1/, "/" and "-" as "_" (mroute, pim_neighbors, msdp_sa_cache).
func ViewSchemaName(path string) string {
	return "view_" + strings.NewReplacer("/", "_", "-", "_").Replace(strings.TrimPrefix(path, "/v1/"))
}

// ViewTypes names every view's answer type for Schema.
func ViewTypes() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for _, v := range Views {
		out[ViewSchemaName(v.Path)] = reflect.TypeOf(v.New()).Elem()
	}
	return out
}

// JSONSchema: a Duration prints as seconds.
func (Duration) JSONSchema() map[string]any {
	return map[string]any{"type": "number", "description": "seconds"}
}
