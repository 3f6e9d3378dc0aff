package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/boltstore"
	"github.com/fulcrumlb/fulcrum/state/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) state.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"), boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
