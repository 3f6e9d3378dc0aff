package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/cluster"
	"github.com/fulcrumlb/fulcrum/keyring"
)

func clusterStatus(t *testing.T, admin string) (cluster.Status, int) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/api/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s cluster.Status
	json.NewDecoder(resp.Body).Decode(&s)
	return s, resp.StatusCode
}

// TestClusterWiring: two apps in one process replicate a pool's table;
// GET /api/v1/cluster shows the link; a reload that leaves the cluster
// section alone keeps the running cluster (no new resync); a reload that
// drops it stops replication.
func TestClusterWiring(t *testing.T) {
	servers := aspApps(t, 2)
	dir := t.TempDir()
	ring, err := keyring.Generate(time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.json")
	if err := ring.Save(keys); err != nil {
		t.Fatal(err)
	}
	type node struct{ name, web, admin, cl, path string }
	n1 := node{name: "lb1", web: freePort(t), admin: freePort(t), cl: freePort(t), path: filepath.Join(dir, "lb1.yaml")}
	n2 := node{name: "lb2", web: freePort(t), admin: freePort(t), cl: freePort(t), path: filepath.Join(dir, "lb2.yaml")}
	conf := func(self, other node, withCluster bool) string {
		extra := "keyring: " + keys + "\n"
		if withCluster {
			extra += fmt.Sprintf("cluster: {node: %s, listen: %s, peers: [{name: %s, address: %s}]}\n", self.name, self.cl, other.name, other.cl)
		}
		return persistConfig(self.web, self.admin, filepath.Join(dir, self.name), extra, "{mode: app_cookie, app_cookie: ASP.NET_SessionId}", servers)
	}
	writeConfig(t, n1.path, conf(n1, n2, true))
	writeConfig(t, n2.path, conf(n2, n1, true))
	a1, a2 := runApp(t, n1.path), runApp(t, n2.path)
	defer a1.Shutdown(t.Context())
	defer a2.Shutdown(t.Context())

	waitUntil(t, "lb1's link up", func() bool {
		s, _ := clusterStatus(t, n1.admin)
		return len(s.Peers) == 1 && s.Peers[0].Connected && s.Peers[0].Inbound
	})
	body, _ := get(t, http.DefaultClient, "http://"+n1.web+"/login?u=alice")
	waitUntil(t, "alice's session on lb2", func() bool {
		s, _ := clusterStatus(t, n2.admin)
		return len(s.Peers) == 1 && s.Peers[0].Received == 1
	})
	req, _ := http.NewRequest("GET", "http://"+n2.web+"/", nil)
	req.AddCookie(&http.Cookie{Name: "ASP.NET_SessionId", Value: "id-" + body + "-alice"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body {
		t.Fatalf("alice through lb2: got server %q, want %q", got, body)
	}

	before, code := clusterStatus(t, n1.admin)
	if code != 200 || before.Node != "lb1" || before.Mode != "peers" {
		t.Fatalf("status: %d %+v", code, before)
	}
	if err := a1.Reload(); err != nil {
		t.Fatal(err)
	}
	after, _ := clusterStatus(t, n1.admin)
	if after.Peers[0].Resyncs != before.Peers[0].Resyncs || !after.Peers[0].Connected {
		t.Errorf("an unchanged reload restarted the cluster: resyncs %d -> %d", before.Peers[0].Resyncs, after.Peers[0].Resyncs)
	}

	writeConfig(t, n1.path, conf(n1, n2, false))
	if err := a1.Reload(); err != nil {
		t.Fatal(err)
	}
	if st, code := clusterStatus(t, n1.admin); code != http.StatusOK || st.Mode != "none" {
		t.Errorf("without a cluster section: status %d mode %q, want 200 and mode none", code, st.Mode)
	}
	if a1.ClusterAddr() != nil {
		t.Error("cluster still listening after its section was removed")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
