package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input panics, that failures are always Errors,
// and that every mistake found at a node carries its position.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bad/*.yaml")
	seeds = append(seeds, "testdata/good.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\nlisteners: *a\npools: &p [*p, *p]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			// A dedicated state host runs only the state service.
			if c == nil || c.State == nil && (len(c.Listeners) == 0 || len(c.Pools) == 0) {
				t.Fatalf("accepted config without listeners or pools (and no state service): %+v", c)
			}
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("got %T %v, want non-empty Errors", err, err)
		}
		for _, e := range es {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("malformed error %+v", e)
			}
			// Only document-level mistakes (empty input, YAML syntax, size)
			// may lack a position; anything with a field path has one.
			if e.Path != "" && (e.Line <= 0 || e.Col <= 0) {
				t.Fatalf("error from a node without position: %+v", e)
			}
		}
	})
}
