package admin_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestPersistenceEndpoints(t *testing.T) {
	h := newHarness(t, "")
	table := h.rt.tables["app"]
	table.PinString("alice", "a")
	table.PinString("bob", "a")
	table.PinString("carol", "b")

	r := h.do("GET", "/api/v1/pools/app/persistence", "")
	mustStatus(t, r, http.StatusOK)
	var got struct {
		Entries int            `json:"entries"`
		Servers map[string]int `json:"servers"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Entries != 3 || got.Servers["a"] != 2 || got.Servers["b"] != 1 {
		t.Fatalf("counts = %+v, want 3 entries: a 2, b 1", got)
	}
	r = h.do("GET", "/api/v1/pools/app/persistence?key=carol", "")
	mustStatus(t, r, http.StatusOK)
	var e map[string]string
	json.Unmarshal(r.body, &e)
	if e["server"] != "b" || e["key"] != "carol" || e["expires"] == "" {
		t.Fatalf("lookup = %v", e)
	}
	mustStatus(t, h.do("GET", "/api/v1/pools/app/persistence?key=nobody", ""), http.StatusNotFound)
	mustStatus(t, h.do("DELETE", "/api/v1/pools/app/persistence?key=carol", ""), http.StatusOK)
	if _, ok := table.Peek("carol"); ok {
		t.Fatalf("entry survived DELETE")
	}
	mustStatus(t, h.do("DELETE", "/api/v1/pools/app/persistence?key=carol", ""), http.StatusNotFound)
	mustStatus(t, h.do("DELETE", "/api/v1/pools/app/persistence", ""), http.StatusBadRequest)
	mustStatus(t, h.do("GET", "/api/v1/pools/api/persistence", ""), http.StatusNotFound)
	mustStatus(t, h.do("GET", "/api/v1/pools/nope/persistence", ""), http.StatusNotFound)
}
