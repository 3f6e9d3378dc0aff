package persist

import "time"

// This file holds one shard's bookkeeping; callers hold s.mu.

func (s *shard) entry(i int32) Entry {
	e := &s.ents[i]
	return Entry{Key: e.key, Server: s.servers[e.srv].name, Seen: time.Unix(int64(e.last), 0)}
}

// serverID interns name in the shard, so entries hold a 4-byte index and
// counts per server come for free.
func (s *shard) serverID(name string) int32 {
	if id, ok := s.byName[name]; ok {
		return id
	}
	return s.addServer(name)
}

// serverIDBytes is serverID without allocating for a name already known.
func (s *shard) serverIDBytes(name []byte) int32 {
	if id, ok := s.byName[string(name)]; ok {
		return id
	}
	return s.addServer(string(name))
}

func (s *shard) addServer(name string) int32 {
	// Reuse a slot whose server has no entries left, so names churned through
	// reloads or by peers do not pile up.
	for id := range s.servers {
		if s.servers[id].n == 0 {
			delete(s.byName, s.servers[id].name)
			s.servers[id] = server{name: name}
			s.byName[name] = int32(id)
			return int32(id)
		}
	}
	s.servers = append(s.servers, server{name: name})
	s.byName[name] = int32(len(s.servers) - 1)
	return int32(len(s.servers) - 1)
}

func (s *shard) setServer(i, id int32) {
	s.servers[s.ents[i].srv].n--
	s.ents[i].srv = id
	s.servers[id].n++
}

// insert adds a new key at the head, evicting the tail first when the shard
// is full, and returns its slot.
func (s *shard) insert(key string, srv int32, last uint32) int32 {
	if len(s.m) >= s.max && s.tail >= 0 {
		// The evicted key may hold srv's only entry: keep the index valid.
		s.servers[srv].n++
		s.remove(s.tail)
		s.servers[srv].n--
	}
	var i int32
	if s.free >= 0 {
		i = s.free
		s.free = s.ents[i].next
	} else {
		s.ents = append(s.ents, entry{})
		i = int32(len(s.ents) - 1)
	}
	s.ents[i] = entry{key: key, last: last, srv: srv, prev: -1, next: s.head}
	if s.head >= 0 {
		s.ents[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
	s.m[key] = i
	s.servers[srv].n++
	s.dirty, s.touched = true, true
	return i
}

func (s *shard) unlink(i int32) {
	e := &s.ents[i]
	if e.prev >= 0 {
		s.ents[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next >= 0 {
		s.ents[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (s *shard) toFront(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	e := &s.ents[i]
	e.next = s.head
	if s.head >= 0 {
		s.ents[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}

func (s *shard) remove(i int32) {
	s.unlink(i)
	e := &s.ents[i]
	delete(s.m, e.key)
	s.servers[e.srv].n--
	*e = entry{next: s.free, prev: -1}
	s.free = i
	s.dirty = true
}
