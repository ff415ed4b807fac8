// Package schemacheck validates JSON that Overcast printed against
// docs/api.schema.json, with an independent JSON Schema validator
// (santhosh-tekuri/jsonschema). Tests only.
package schemacheck

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"overcast/internal/api"
)

var (
	once     sync.Once
	compiler *jsonschema.Compiler
	loadErr  error
	mu       sync.Mutex
	cache    = map[string]*jsonschema.Schema{}
)

// file finds docs/api.schema.json from the test's directory up.
func file() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "docs", "api.schema.json")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", os.ErrNotExist
		}
		dir = up
	}
}

// Check fails t unless b is valid against the schema's $defs entry def
// (api.ViewSchemaName(path) for a view, tool_recv and so on for a tool).
func Check(t testing.TB, def string, b []byte) {
	t.Helper()
	once.Do(func() {
		p, err := file()
		if err != nil {
			loadErr = err
			return
		}
		f, err := os.Open(p)
		if err != nil {
			loadErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			loadErr = err
			return
		}
		compiler = jsonschema.NewCompiler()
		loadErr = compiler.AddResource("file:///api.schema.json", doc)
	})
	if loadErr != nil {
		t.Fatalf("docs/api.schema.json: %v", loadErr)
	}
	mu.Lock()
	s, ok := cache[def]
	if !ok {
		var err error
		s, err = compiler.Compile("file:///api.schema.json#/$defs/" + def)
		if err != nil {
			mu.Unlock()
			t.Fatalf("schema %s: %v", def, err)
		}
		cache[def] = s
	}
	mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", def, err, b)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s: the JSON does not match docs/api.schema.json: %v\n%s", def, err, b)
	}
}

// Views asks every view of a daemon (view answers one, as Daemon.View
// does; g and src fill the views' arguments), encodes each answer as the
// API sends it, checks it against the schema and decodes it with the
// client's type. A view whose component is off answers with an error and
// is skipped.
func Views(t testing.TB, view func(path, arg string) (any, error), g, src string) {
	t.Helper()
	for _, v := range api.Views {
		arg := ""
		switch {
		case strings.HasPrefix(v.Arg, "GROUP"):
			arg = g + "," + src
		case v.Arg != "":
			arg = src
		}
		ans, err := view(v.Path, arg)
		if err != nil {
			continue
		}
		js, err := api.Marshal(ans)
		if err != nil {
			t.Fatalf("show %s: %v", v.Words, err)
		}
		Check(t, api.ViewSchemaName(v.Path), js)
		if err := json.Unmarshal(js, v.New()); err != nil {
			t.Errorf("show %s: the client cannot decode the JSON: %v", v.Words, err)
		}
	}
}
