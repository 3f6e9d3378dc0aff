package limit

// Scopes: a client has one state per rate it is held to. Callers pass a
// small index to Allow (the listener's is 0, route i's is i+1), which a
// reload may give to another rule while connections still serve requests
// with the previous config; replication needs a name that means the same
// rule on every node. So a Rate can be bound to a named scope (Bind): Allow
// then keeps the state under the name's id, whatever index it is given,
// and a name keeps its id as long as it stays in force (SetScopes). An
// unbound rate keeps its state under its index (never replicated).

// ListenerScope is the name of a listener's own rate; its state also holds
// the client's connections.
const ListenerScope = "listener"

// Scope is one rate a client is held to, named the same on every node:
// ListenerScope for the listener's, the route's match (e.g. "route
// host=shop.example path_prefix=/api") for a route's.
type Scope struct {
	Name string
	Rate Rate
}

// registry is an immutable mapping of names to ids, replaced whole.
type registry struct {
	byName map[string]uint32
	byID   map[uint32]Scope // Rate: the one in force (zero until SetScopes)
}

// unnamed marks the id of an unbound rate's index: kept locally, never
// replicated.
const unnamed = 1 << 31

// Bind returns s.Rate bound to the scope named s.Name (see Allow). A name
// new to the table gets an id; it stays only if the next SetScopes lists
// it. Call it while building a config, SetScopes when the config is in
// force.
func (t *Table) Bind(s Scope) Rate {
	t.scopeMu.Lock()
	defer t.scopeMu.Unlock()
	old := t.scopes.Load()
	id, ok := old.lookupID(s.Name)
	if !ok {
		id = t.newID(s.Name)
		r := old.copy()
		r.byName[s.Name] = id
		r.byID[id] = Scope{Name: s.Name}
		t.scopes.Store(r)
	}
	r := s.Rate
	r.scope, r.bound = id, true
	return r
}

// SetScopes makes scopes the ones in force: their rates are what records
// from other nodes are charged at (Apply). A name no longer listed is
// forgotten (its clients' states age out; its id is never reused).
func (t *Table) SetScopes(scopes []Scope) {
	t.scopeMu.Lock()
	defer t.scopeMu.Unlock()
	old := t.scopes.Load()
	r := &registry{byName: map[string]uint32{}, byID: map[uint32]Scope{}}
	for _, s := range scopes {
		if _, dup := r.byName[s.Name]; dup {
			continue
		}
		id, ok := old.lookupID(s.Name)
		if !ok {
			id = t.newID(s.Name)
		}
		r.byName[s.Name] = id
		r.byID[id] = s
	}
	t.scopes.Store(r)
}

// newID returns the id of a new name. Called with scopeMu held.
func (t *Table) newID(name string) uint32 {
	if name == ListenerScope {
		return 0
	}
	id := t.nextID
	t.nextID++
	return id
}

// scopeID is the id Allow keeps r's state under.
func scopeID(r Rate, index int) uint32 {
	switch {
	case r.bound:
		return r.scope
	case index == 0:
		return 0
	}
	return unnamed | uint32(index)
}

func (r *registry) copy() *registry {
	c := &registry{byName: map[string]uint32{}, byID: map[uint32]Scope{}}
	if r != nil {
		for k, v := range r.byName {
			c.byName[k] = v
		}
		for k, v := range r.byID {
			c.byID[k] = v
		}
	}
	return c
}

func (r *registry) lookupID(name string) (uint32, bool) {
	if r == nil {
		return 0, false
	}
	id, ok := r.byName[name]
	return id, ok
}

// lookup returns the scope named name.
func (r *registry) lookup(name string) (uint32, Scope, bool) {
	id, ok := r.lookupID(name)
	if !ok {
		return 0, Scope{}, false
	}
	return id, r.byID[id], true
}

// scope returns the scope of an id.
func (r *registry) scope(id uint32) (Scope, bool) {
	if r == nil {
		return Scope{}, false
	}
	s, ok := r.byID[id]
	return s, ok
}
