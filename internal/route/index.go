package route

import "sort"

// indexFrom is the table size from which New builds an index; below it a
// scan of the rules is as fast.
const indexFrom = 16

// maxLists bounds the candidate lists one request gathers (its host, each
// wildcard suffix of it, its path, each prefix length, the rest); a request
// that would need more is matched by a scan.
const maxLists = 16

// index files each rule under what a request must carry for it to match, so
// Match looks at the few rules that can match instead of all: rules with a
// host by that host (exact, or the wildcard's suffix), the others by exact
// path, by path prefix, or, with neither, in rest. Every list holds rule
// indexes in ascending order; Match merges the lists a request selects and
// checks each candidate in full, in rule order, so the first matching rule
// wins exactly as in a scan.
type index struct {
	exact      map[string][]int32 // host → rules
	wild       map[string][]int32 // wildcard suffix (".example.com") → rules
	paths      map[string][]int32 // no host: exact path → rules
	prefixes   map[string][]int32 // no host: path prefix → rules
	prefixLens []int              // distinct prefix lengths, ascending
	rest       []int32            // no host, no path
}

func buildIndex(rules []matcher) *index {
	x := &index{exact: map[string][]int32{}, wild: map[string][]int32{}, paths: map[string][]int32{}, prefixes: map[string][]int32{}}
	lens := map[int]bool{}
	for i := range rules {
		m := &rules[i]
		r := int32(i)
		switch {
		case m.host != "" && m.wildcard:
			x.wild[m.host] = append(x.wild[m.host], r)
		case m.host != "":
			x.exact[m.host] = append(x.exact[m.host], r)
		case m.prefix:
			x.prefixes[m.path] = append(x.prefixes[m.path], r)
			lens[len(m.path)] = true
		case m.path != "":
			x.paths[m.path] = append(x.paths[m.path], r)
		default:
			x.rest = append(x.rest, r)
		}
	}
	for l := range lens {
		x.prefixLens = append(x.prefixLens, l)
	}
	sort.Ints(x.prefixLens)
	return x
}

// matchIndexed is Match through the index; done is false when the request
// cannot use it (a host too long for the stack buffer, too many lists) and
// must be scanned.
func (t *Table) matchIndexed(host, path []byte, header func(name string) []byte) (target, rule int, ok, done bool) {
	x := t.idx
	var lists [maxLists][]int32
	n := 0
	add := func(l []int32) bool {
		if len(l) == 0 {
			return true
		}
		if n == maxLists {
			return false
		}
		lists[n] = l
		n++
		return true
	}
	if len(x.exact) > 0 || len(x.wild) > 0 {
		var buf [256]byte
		if len(host) > len(buf) {
			return 0, 0, false, false
		}
		lh := buf[:len(host)]
		for i, c := range host {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lh[i] = c
		}
		if !add(x.exact[string(lh)]) {
			return 0, 0, false, false
		}
		if len(x.wild) > 0 {
			// A wildcard matches names strictly under its suffix: every
			// dot after the first byte starts a candidate suffix.
			for i := 1; i < len(lh); i++ {
				if lh[i] == '.' && !add(x.wild[string(lh[i:])]) {
					return 0, 0, false, false
				}
			}
		}
	}
	if !add(x.paths[string(path)]) {
		return 0, 0, false, false
	}
	for _, l := range x.prefixLens {
		if len(path) < l {
			break
		}
		if !add(x.prefixes[string(path[:l])]) {
			return 0, 0, false, false
		}
	}
	if !add(x.rest) {
		return 0, 0, false, false
	}
	// Merge in rule order: the lowest head first.
	for {
		best := -1
		for k := 0; k < n; k++ {
			if len(lists[k]) > 0 && (best < 0 || lists[k][0] < lists[best][0]) {
				best = k
			}
		}
		if best < 0 {
			return 0, -1, false, true
		}
		i := int(lists[best][0])
		lists[best] = lists[best][1:]
		if m := &t.rules[i]; m.matches(host, path, header) {
			return m.target, i, true, true
		}
	}
}
