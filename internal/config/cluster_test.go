package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const clusterPools = `listeners:
  - {name: web, listen: 127.0.0.1:8080, protocol: http, pool: app}
pools:
  - name: app
    servers: [{name: a, address: 127.0.0.1:9001}]
`

// TestClusterAsWritten: both forms of issue 4's cluster: section, keys as
// written, with defaults.
func TestClusterAsWritten(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src string
		want      Cluster
	}{
		{"peers", "keyring: ./keys.json\ncluster:\n  node: lb1\n  listen: 127.0.0.1:7946\n  peers: [{name: lb2, address: 127.0.0.1:7947}]\n",
			Cluster{Node: "lb1", Listen: "127.0.0.1:7946", Peers: []ClusterPeer{{Name: "lb2", Address: "127.0.0.1:7947"}}}},
		{"redis", "cluster:\n  node: lb1\n  store: {type: redis, url: redis://127.0.0.1:6379/0}\n",
			Cluster{Node: "lb1", Store: &ClusterStore{Type: "redis", URL: "redis://127.0.0.1:6379/0", Prefix: "fulcrum:cluster:"}}},
		{"redis prefix", "cluster:\n  node: lb3\n  store: {type: redis, url: rediss://u:p@redis:6380/2, prefix: \"farm-a:\"}\n",
			Cluster{Node: "lb3", Store: &ClusterStore{Type: "redis", URL: "rediss://u:p@redis:6380/2", Prefix: "farm-a:"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(filepath.Join(dir, "fulcrum.yaml"), []byte(tc.src+clusterPools))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Cluster == nil || !reflect.DeepEqual(*c.Cluster, tc.want) {
				t.Fatalf("Cluster: got %+v, want %+v", c.Cluster, tc.want)
			}
		})
	}
}

func TestNoCluster(t *testing.T) {
	c, err := Parse("x.yaml", []byte(clusterPools))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != nil {
		t.Fatalf("Cluster: got %+v, want nil", c.Cluster)
	}
}
