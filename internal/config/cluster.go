package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// This file holds the cluster: section: replication of persistence tables
// between the nodes of a farm (internal/cluster).

// Cluster replicates persistence tables between fulcrum nodes (key cluster;
// nil when the file has none). Either peers (an active/standby or
// active/active pair, pushed over an authenticated TCP link) or store (a
// Redis every node shares, for three nodes or more), not both.
type Cluster struct {
	// Node is this node's name, unique in the farm; peers know it by this
	// name (key node, required, a name like a pool's).
	Node string
	// Listen is the replication endpoint peers connect to, host:port (key
	// listen, required with peers, only allowed with peers; unique across
	// every listen address). Peers are authenticated with the key ring.
	Listen string
	// Peers are the other nodes this one pushes its changes to and accepts
	// changes from (key peers, a list of {name, address}).
	Peers []ClusterPeer
	// Store is the shared table every node reads and writes (key store).
	Store *ClusterStore
}

// ClusterPeer is another node of the farm.
type ClusterPeer struct {
	// Name is the peer's cluster.node (key name, required, unique, not this
	// node's own).
	Name string
	// Address is the peer's cluster.listen, host:port (key address,
	// required).
	Address string
}

// ClusterStore is the shared store of a larger farm.
type ClusterStore struct {
	// Type is redis, the only store (key type, required).
	Type string
	// URL locates Redis: redis://[user:pass@]host:port/db or rediss://...
	// (key url, required).
	URL string
	// Prefix starts every Redis key and channel the cluster uses, so farms
	// can share one Redis (key prefix, default "fulcrum:cluster:").
	Prefix string
}

const defaultClusterPrefix = "fulcrum:cluster:"

func (d *decoder) cluster(v *yaml.Node, path string) *Cluster {
	c := &Cluster{}
	d.fields(v, path, map[string]setter{
		"node":   d.str(&c.Node),
		"listen": d.str(&c.Listen),
		"peers": func(v *yaml.Node, path string) {
			d.list(v, path, func(v *yaml.Node, path string) {
				var p ClusterPeer
				d.fields(v, path, map[string]setter{
					"name":    d.str(&p.Name),
					"address": d.str(&p.Address),
				})
				c.Peers = append(c.Peers, p)
			})
		},
		"store": func(v *yaml.Node, path string) {
			c.Store = &ClusterStore{}
			d.fields(v, path, map[string]setter{
				"type":   d.str(&c.Store.Type),
				"url":    d.str(&c.Store.URL),
				"prefix": d.str(&c.Store.Prefix),
			})
		},
	})
	return c
}

func (df defaulter) cluster(c *Cluster) {
	if c == nil || c.Store == nil {
		return
	}
	setDefault(df, "cluster.store.prefix", &c.Store.Prefix, defaultClusterPrefix)
}

func (v *validator) cluster(c *Cluster) {
	if c == nil || v.bad["cluster"] {
		return
	}
	v.required("cluster", "node")
	v.name("cluster.node", c.Node)
	switch {
	case v.present("cluster.peers") && v.present("cluster.store"):
		v.errf("cluster.store", "only one of peers and store is allowed (peers for a pair, store for a larger farm)")
	case !v.present("cluster.peers") && !v.present("cluster.store"):
		v.errf("cluster", "missing required field %q or %q", "peers", "store")
	}
	if v.present("cluster.peers") {
		v.clusterPeers(c)
	} else {
		v.onlyWith("cluster", false, "with peers", "listen")
	}
	if c.Store != nil && !v.bad["cluster.store"] {
		v.clusterStore(c.Store)
	}
}

func (v *validator) clusterPeers(c *Cluster) {
	if !v.present("cluster.listen") {
		v.errf("cluster", "missing required field %q (peers connect to it)", "listen")
	} else if v.ok("cluster.listen") {
		v.check("cluster.listen", checkAddress(c.Listen, true))
		v.clusterListenUnique(c.Listen)
	}
	if !v.present("keyring") {
		v.errf("cluster.peers", "peers authenticate each other with the top-level keyring (the same file on every node); set keyring")
	}
	v.nonEmptyList("cluster.peers", len(c.Peers))
	v.unique("cluster.peers", len(c.Peers), func(i int) string { return c.Peers[i].Name }, "peer")
	for i, p := range c.Peers {
		path := index("cluster.peers", i)
		if v.bad[path] {
			continue
		}
		v.required(path, "name", "address")
		v.name(join(path, "name"), p.Name)
		if np := join(path, "name"); v.ok(np) && p.Name == c.Node && checkName(p.Name) == "" {
			v.errf(np, "must not be this node's own name %q", c.Node)
		}
		if ap := join(path, "address"); v.ok(ap) {
			v.check(ap, checkAddress(p.Address, false))
		}
	}
}

func (v *validator) clusterStore(s *ClusterStore) {
	const path = "cluster.store"
	v.required(path, "type", "url")
	v.oneOf(join(path, "type"), s.Type, "redis")
	if p := join(path, "url"); v.ok(p) && !strings.HasPrefix(s.URL, "redis://") && !strings.HasPrefix(s.URL, "rediss://") {
		v.errf(p, "must start with redis:// or rediss://, got %q", s.URL)
	}
	if p := join(path, "prefix"); v.ok(p) && s.Prefix == "" {
		v.errf(p, "must not be empty")
	}
}

// clusterListenUnique reports cluster.listen when another listen address
// (admin, state, a listener) already uses it.
func (v *validator) clusterListenUnique(addr string) {
	key := normalAddress(addr)
	others := map[string]string{}
	if v.ok("admin.listen") {
		others[normalAddress(v.c.Admin.Listen)] = "admin.listen"
	}
	if v.c.State != nil && v.ok("state.listen") {
		others[normalAddress(v.c.State.Listen)] = "state.listen"
	}
	for i, l := range v.c.Listeners {
		if p := join(index("listeners", i), "listen"); v.ok(p) {
			others[normalAddress(l.Listen)] = p
		}
	}
	if other, dup := others[key]; dup {
		v.errf("cluster.listen", "address %s is already used by %s", addr, other)
	}
}
