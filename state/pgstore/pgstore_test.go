package pgstore_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/pgstore"
	"github.com/fulcrumlb/fulcrum/state/storetest"
)

// dsn is the test database: FULCRUM_TEST_POSTGRES_DSN (default
// postgres://postgres@127.0.0.1:5432/test). Tests fail, never skip, when it
// does not answer.
func dsn() string {
	if v := os.Getenv("FULCRUM_TEST_POSTGRES_DSN"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// newStore returns a store in a schema of its own, dropped when the test ends.
func newStore(t *testing.T) state.Store {
	t.Helper()
	schema := "fulcrum_test_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(state.NewLockID()))
	s, err := pgstore.Open(t.Context(), dsn(), pgstore.Options{Schema: schema, MaxConns: 4})
	if err != nil {
		t.Fatalf("PostgreSQL is required (set FULCRUM_TEST_POSTGRES_DSN or run make services): %v", err)
	}
	t.Cleanup(func() { dropSchema(t, schema) })
	return s
}

func dropSchema(t *testing.T, schema string) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn())
	if err != nil {
		t.Errorf("dropping test schema: %v", err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("dropping test schema: %v", err)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newStore)
}

func TestMigrateTwice(t *testing.T) {
	schema := "fulcrum_test_migrate_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(state.NewLockID()))
	t.Cleanup(func() { dropSchema(t, schema) })
	for range 2 {
		s, err := pgstore.Open(t.Context(), dsn(), pgstore.Options{Schema: schema})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		s.Close()
	}
}
