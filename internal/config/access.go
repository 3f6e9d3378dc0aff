package config

import (
	"net/netip"
	"regexp"

	"gopkg.in/yaml.v3"
)

// AccessRule allows or denies requests, answered by fulcrum with 403 (the
// application-gateway role). Every condition given must match; rules are
// tried in order and the first that matches decides; when none does, the
// request is allowed.
type AccessRule struct {
	// Action is allow or deny (key action, required).
	Action string
	// CIDR matches the client's settled address (after PROXY headers and
	// trusted forwarding headers) against addresses or prefixes (key cidr).
	CIDR     []string
	Prefixes []netip.Prefix `json:"-"`
	// Methods matches the request method exactly (key methods).
	Methods []string
	// Path is a regular expression the request path (without the query)
	// must match (key path).
	Path   string
	PathRe *regexp.Regexp `json:"-"`
	// Header matches a request header's value by regular expression (key
	// header: {name, value}); a missing header never matches.
	Header *AccessHeader
}

// AccessHeader is a header condition of an access rule.
type AccessHeader struct {
	Name    string
	Value   string
	ValueRe *regexp.Regexp `json:"-"`
}

func (d *decoder) access(dst *[]AccessRule) setter {
	return func(v *yaml.Node, path string) {
		d.list(v, path, func(v *yaml.Node, path string) {
			var r AccessRule
			d.fields(v, path, map[string]setter{
				"action":  d.str(&r.Action),
				"cidr":    d.stringList(&r.CIDR),
				"methods": d.stringList(&r.Methods),
				"path":    d.str(&r.Path),
				"header": func(v *yaml.Node, path string) {
					r.Header = &AccessHeader{}
					d.fields(v, path, map[string]setter{
						"name":  d.str(&r.Header.Name),
						"value": d.str(&r.Header.Value),
					})
				},
			})
			*dst = append(*dst, r)
		})
	}
}

// accessRules validates a list of rules at path.
func (v *validator) accessRules(rules []AccessRule, path string) {
	for i := range rules {
		p := index(path, i)
		if v.bad[p] {
			continue
		}
		r := &rules[i]
		v.required(p, "action")
		v.oneOf(join(p, "action"), r.Action, "allow", "deny")
		r.Prefixes = nil
		for j, s := range r.CIDR {
			pre, err := parsePrefix(s)
			if err != nil {
				v.errf(index(join(p, "cidr"), j), "want an address or CIDR prefix like 10.0.0.0/8, got %q", s)
				continue
			}
			r.Prefixes = append(r.Prefixes, pre)
		}
		for j, m := range r.Methods {
			v.check(index(join(p, "methods"), j), checkToken(m))
		}
		if r.Path != "" {
			r.PathRe = v.regexp(join(p, "path"), r.Path)
		}
		if hp := join(p, "header"); r.Header != nil && !v.bad[hp] {
			v.required(hp, "name", "value")
			v.check(join(hp, "name"), checkToken(r.Header.Name))
			if r.Header.Value != "" {
				r.Header.ValueRe = v.regexp(join(hp, "value"), r.Header.Value)
			}
		}
	}
}
