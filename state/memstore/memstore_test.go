package memstore_test

import (
	"testing"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/memstore"
	"github.com/fulcrumlb/fulcrum/state/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) state.Store { return memstore.New(memstore.Options{}) })
}
