package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one mistake in a configuration file. It renders as
// "FILE:LINE:COL: path: message". Line and Col are 1-based; a mistake that
// has no node to point at (an empty file, some YAML syntax errors) has Line
// or Col 0 and the missing parts are left out of the rendering. Path uses the
// YAML key names and [i] indices, e.g. "pools[0].servers[1].address"; it is
// empty for mistakes about the document as a whole.
type Error struct {
	File string
	Line int
	Col  int
	Path string
	Msg  string
}

// Error renders e as "FILE:LINE:COL: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every mistake found in one configuration, sorted by line then
// column. Parse and Load return it (never empty) when a configuration is
// rejected; use errors.As to get at the individual entries.
type Errors []*Error

// Error renders one mistake per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is see each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// span is where a node starts in the source.
type span struct{ line, col int }

// book is shared by the decode, defaults and validate passes: it remembers
// where every decoded path came from, which paths failed to decode, and the
// mistakes found so far.
type book struct {
	file string
	at   map[string]span // path -> position of the node found at that path
	bad  map[string]bool // paths whose value did not decode (already reported)
	errs Errors
}

func newBook(file string) *book {
	return &book{file: file, at: map[string]span{}, bad: map[string]bool{}}
}

// mark records that path was present in the file, at n.
func (b *book) mark(n *yaml.Node, path string) {
	b.at[path] = span{n.Line, n.Column}
}

// present reports whether path was written in the file (even if invalid).
func (b *book) present(path string) bool {
	_, ok := b.at[path]
	return ok
}

// ok reports whether path was written in the file and decoded cleanly.
func (b *book) ok(path string) bool {
	return b.present(path) && !b.bad[path]
}

// errAt records a mistake at an explicit position.
func (b *book) errAt(s span, path, format string, args ...any) {
	b.errs = append(b.errs, &Error{File: b.file, Line: s.line, Col: s.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// errNode records a mistake located at node n and marks path bad.
func (b *book) errNode(n *yaml.Node, path, format string, args ...any) {
	b.bad[path] = true
	b.errAt(span{n.Line, n.Column}, path, format, args...)
}

// errf records a mistake about path, located at the node written for path or,
// when path was not written (a missing field, a default), at its nearest
// written ancestor.
func (b *book) errf(path, format string, args ...any) {
	p := path
	for {
		if s, ok := b.at[p]; ok {
			b.errAt(s, path, format, args...)
			return
		}
		if p == "" {
			b.errAt(span{}, path, format, args...)
			return
		}
		p = parent(p)
	}
}

// result sorts the mistakes and returns them as an error, or nil if none.
func (b *book) result() error {
	if len(b.errs) == 0 {
		return nil
	}
	sort.SliceStable(b.errs, func(i, j int) bool {
		if b.errs[i].Line != b.errs[j].Line {
			return b.errs[i].Line < b.errs[j].Line
		}
		return b.errs[i].Col < b.errs[j].Col
	})
	return b.errs
}

// join appends a key to a path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a sequence index to a path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// parent strips the last key or index from a path.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
