package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the nodes visited while decoding. Aliases can make a small
// file expand into a huge tree; real configurations stay far below this.
const maxNodes = 1 << 18

// decoder turns a yaml.Node tree into a Config, recording where each path was
// found and every type mistake.
type decoder struct {
	*book
	visited int
}

// setter decodes the value node written for one field at path.
type setter func(v *yaml.Node, path string)

// resolve follows aliases and charges the node against the size budget. It
// returns nil when decoding must stop (already reported).
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	// Aliases cannot recurse forever: every step down goes one level deeper
	// into a schema of fixed depth. Chains of aliases are bounded by the
	// budget too.
	for n != nil && n.Kind == yaml.AliasNode {
		d.visited++
		n = n.Alias
	}
	d.visited++
	if n == nil || d.tooLarge() {
		return nil
	}
	return n
}

// tooLarge reports whether the node budget ran out. Decoding then stops
// everywhere, and the half-decoded result must not be validated.
func (d *decoder) tooLarge() bool {
	return d.visited > maxNodes
}

// isNull reports whether n is an empty value ("key:" with nothing, or ~).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what n is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		default:
			return strconv.Quote(n.Value)
		}
	}
	return "an unsupported YAML node"
}

// fields decodes the mapping n at path, calling set[key] for each key in
// document order. Unknown keys, duplicate keys and merge keys are mistakes.
// An empty value is an empty mapping. It reports whether n was a mapping.
func (d *decoder) fields(v *yaml.Node, path string, set map[string]setter) bool {
	n := d.resolve(v)
	if n == nil {
		return false
	}
	d.mark(n, path)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.errNode(n, path, "expected a mapping, got %s", describe(n))
		return false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return true
		}
		switch {
		case k.Kind != yaml.ScalarNode:
			d.errAt(span{k.Line, k.Column}, path, "field names must be plain strings, got %s", describe(k))
		case k.Tag == "!!merge":
			d.errAt(span{k.Line, k.Column}, path, "merge keys (<<) are not supported")
		case set[k.Value] == nil:
			d.errAt(span{k.Line, k.Column}, path, "unknown field %q%s", k.Value, suggest(k.Value, set))
		case seen[k.Value] != nil:
			d.errAt(span{k.Line, k.Column}, path, "duplicate field %q (first set on line %d)", k.Value, seen[k.Value].Line)
		default:
			seen[k.Value] = k
			set[k.Value](n.Content[i+1], join(path, k.Value))
		}
	}
	return true
}

// suggest returns ` (did you mean "x"?)` when a known key is close to key:
// at most one edit per three characters, so short words are not "corrected"
// into unrelated ones.
func suggest(key string, set map[string]setter) string {
	best, bestDist := "", len(key)/3+1
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic among equally close names
	for _, name := range names {
		if dist := editDistance(key, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, giving up (and
// returning a large value) for long inputs.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// list decodes the sequence v at path, calling each for every item with the
// item's path. An empty value is an empty list.
func (d *decoder) list(v *yaml.Node, path string, each setter) {
	n := d.resolve(v)
	if n == nil {
		return
	}
	d.mark(n, path)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errNode(n, path, "expected a list, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		each(item, index(path, i))
	}
}

// oneOrList decodes v as a list when it is one, else as a single item at
// path itself.
func (d *decoder) oneOrList(v *yaml.Node, path string, each setter) {
	if n := d.resolve(v); n != nil && n.Kind == yaml.SequenceNode {
		d.list(n, path, each)
		return
	}
	each(v, path)
}

// scalar resolves v and checks it is a scalar; want names the expected type.
func (d *decoder) scalar(v *yaml.Node, path, want string) *yaml.Node {
	n := d.resolve(v)
	if n == nil {
		return nil
	}
	d.mark(n, path)
	if n.Kind != yaml.ScalarNode {
		d.errNode(n, path, "expected %s, got %s", want, describe(n))
		return nil
	}
	return n
}

// str decodes any scalar but null and booleans as its text: a header value
// of 1 is the string "1", but "true" must be quoted to be a string.
func (d *decoder) str(dst *string) setter {
	return func(v *yaml.Node, path string) {
		n := d.scalar(v, path, "a string")
		if n == nil {
			return
		}
		if n.Tag == "!!null" || n.Tag == "!!bool" {
			d.errNode(n, path, "expected a string, got %s", describe(n))
			return
		}
		*dst = n.Value
	}
}

// integer decodes a YAML integer that fits an int.
func (d *decoder) integer(dst *int) setter {
	return func(v *yaml.Node, path string) {
		n := d.scalar(v, path, "an integer")
		if n == nil {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, strconv.IntSize)
		if n.Tag != "!!int" || err != nil {
			d.errNode(n, path, "expected an integer, got %s", describe(n))
			return
		}
		*dst = int(i)
	}
}

// boolean decodes true or false.
func (d *decoder) boolean(dst *bool) setter {
	return func(v *yaml.Node, path string) {
		n := d.scalar(v, path, "true or false")
		if n == nil {
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if n.Tag != "!!bool" || err != nil {
			d.errNode(n, path, "expected true or false, got %s", describe(n))
			return
		}
		*dst = b
	}
}

// duration decodes a string such as "5s" with time.ParseDuration. Bare
// numbers are refused: 5 could mean seconds or milliseconds.
func (d *decoder) duration(dst *time.Duration) setter {
	return func(v *yaml.Node, path string) {
		n := d.scalar(v, path, "a duration")
		if n == nil {
			return
		}
		if n.Tag != "!!str" {
			if n.Tag == "!!int" || n.Tag == "!!float" {
				d.errNode(n, path, "duration %s has no unit; add one, e.g. \"%ss\" or \"%sms\"", n.Value, n.Value, n.Value)
				return
			}
			d.errNode(n, path, "expected a duration such as \"5s\", got %s", describe(n))
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
				d.errNode(n, path, "duration %q has no unit; add one, e.g. \"%ss\" or \"%sms\"", n.Value, n.Value, n.Value)
				return
			}
			d.errNode(n, path, "invalid duration %q: use a number and a unit (ms, s, m, h), e.g. \"5s\" or \"1m30s\"", n.Value)
			return
		}
		*dst = dur
	}
}

// size decodes a byte count: a YAML integer or a string for ParseSize.
func (d *decoder) size(dst *int64) setter {
	return func(v *yaml.Node, path string) {
		n := d.scalar(v, path, "a size")
		if n == nil {
			return
		}
		var s int64
		var err error
		switch n.Tag {
		case "!!int", "!!str":
			s, err = ParseSize(n.Value)
		default:
			err = fmt.Errorf("expected a size such as 65536 or \"64KiB\", got %s", describe(n))
		}
		if err != nil {
			d.errNode(n, path, "%v", err)
			return
		}
		*dst = s
	}
}
