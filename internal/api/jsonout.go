package api

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// SchemaVersion is the version of the JSON every view and tool prints
// (docs/api.schema.json). It changes when a name or a type changes;
// adding a field does not change it.
const SchemaVersion = 2

// Marshal encodes a view's or a tool's answer in Overcast's one JSON
// form: every field present (an absent value, a field tagged omitempty
// that is zero, is null), empty lists [] and empty maps {}, never null;
// timers in seconds (Duration). Decoding it into the Go types gives the
// values back.
func Marshal(v any) ([]byte, error) {
	t, err := tree(reflect.ValueOf(v))
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// MarshalIndent is Marshal, indented for people.
func MarshalIndent(v any) ([]byte, error) {
	t, err := tree(reflect.ValueOf(v))
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(t, "", "  ")
}

var (
	marshaler     = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// tree turns a value into maps, slices and scalars in that form.
func tree(v reflect.Value) (any, error) {
	if !v.IsValid() {
		return nil, nil
	}
	if v.Type().Implements(marshaler) && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		b, err := v.Interface().(json.Marshaler).MarshalJSON()
		return json.RawMessage(b), err
	}
	if v.Type().Implements(textMarshaler) && v.Kind() != reflect.Pointer {
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if len(b) == 0 {
			return nil, err // the zero netip.Addr: absent
		}
		return string(b), err
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, nil
		}
		return tree(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		if err := fields(v, out); err != nil {
			return nil, err
		}
		return out, nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface(), nil // bytes as base64, as encoding/json
		}
		out := make([]any, v.Len())
		for i := range out {
			x, err := tree(v.Index(i))
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case reflect.Map:
		out := map[string]any{}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			x, err := tree(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k.Interface())] = x
		}
		return out, nil
	}
	return v.Interface(), nil
}

// fields adds a struct's fields (embedded structs' too) under their JSON
// names.
func fields(v reflect.Value, out map[string]any) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, omit, skip := jsonName(f)
		if skip {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous && name == "" && fv.Kind() == reflect.Struct {
			if err := fields(fv, out); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		if omit && fv.IsZero() && fv.Kind() != reflect.Slice && fv.Kind() != reflect.Map {
			out[name] = nil // absent
			continue
		}
		x, err := tree(fv)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out[name] = x
	}
	return nil
}

// jsonName reads a field's json tag: its name, whether it is optional
// (omitempty), whether it is left out ("-").
func jsonName(f reflect.StructField) (name string, optional, skip bool) {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false, true
	}
	name, opts, _ := strings.Cut(tag, ",")
	return name, strings.Contains(opts, "omitempty"), false
}
