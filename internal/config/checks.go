package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// This file holds the pure checks of single values. Each returns a problem
// phrased to follow "path: ", or "" when the value is fine.

// checkName accepts names safe in logs, metric labels and URLs.
func checkName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 64 {
		return "must be at most 64 characters"
	}
	for _, c := range s {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return "must contain only letters, digits, '.', '_' and '-', got " + strconv.Quote(s)
		}
	}
	return ""
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkToken accepts an HTTP header name (an RFC 9110 token).
func checkToken(s string) string {
	if s == "" {
		return "must not be empty"
	}
	for _, c := range s {
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", c) {
			return "must be a valid header name, got " + strconv.Quote(s)
		}
	}
	return ""
}

// checkHostname accepts DNS names and IPv4 addresses written as names:
// dot-separated labels of letters, digits, '-' and '_'.
func checkHostname(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 253 {
		return "host name is longer than 253 characters"
	}
	labels := strings.Split(s, ".")
	for _, label := range labels {
		if label == "" || len(label) > 63 {
			return "invalid host name " + strconv.Quote(s)
		}
		for _, c := range label {
			if !isAlnum(c) && c != '-' && c != '_' {
				return "invalid host name " + strconv.Quote(s)
			}
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		// All-numeric last label: meant as an IPv4 address, and not one.
		return "invalid IPv4 address " + strconv.Quote(s)
	}
	return ""
}

// checkRouteHost accepts an exact host or one leading "*." wildcard, without
// a port.
func checkRouteHost(s string) string {
	if strings.Contains(s, ":") {
		return "must not include a port, got " + strconv.Quote(s)
	}
	rest := strings.TrimPrefix(s, "*.")
	if strings.Contains(rest, "*") {
		return `"*" is only allowed as a leading "*.", got ` + strconv.Quote(s)
	}
	return checkHostname(rest)
}

// checkAddress accepts host:port with port 1..65535. The host may be an IPv4
// address, a bracketed IPv6 address or a host name; it may be empty only when
// emptyHost is set (listen addresses, meaning every address).
func checkAddress(addr string, emptyHost bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port (IPv6 in brackets, e.g. [::1]:8080), got " + strconv.Quote(addr)
	}
	if p := checkPort(port); p != "" {
		return p
	}
	switch {
	case host == "" && emptyHost:
		return ""
	case host == "":
		return "missing host in " + strconv.Quote(addr)
	case strings.Contains(host, ":"):
		if _, err := netip.ParseAddr(host); err != nil {
			return "invalid IPv6 address " + strconv.Quote(host)
		}
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return checkHostname(host)
}

// checkPort accepts a decimal port 1..65535.
func checkPort(port string) string {
	n := 0
	for i, c := range port {
		if c < '0' || c > '9' || i >= 5 {
			n = -1
			break
		}
		n = n*10 + int(c-'0')
	}
	if port == "" || n < 1 || n > 65535 {
		return "port must be a number 1..65535, got " + strconv.Quote(port)
	}
	return ""
}

// checkHostHeader accepts a Host header value: a host name or IP address
// with an optional port.
func checkHostHeader(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return checkAddress(s, false)
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if _, err := netip.ParseAddr(s[1 : len(s)-1]); err != nil {
			return "invalid IPv6 address " + strconv.Quote(s)
		}
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil && !strings.Contains(s, ":") {
		return ""
	}
	return checkHostname(s)
}

// normalAddress is the form used to find duplicate listen addresses.
func normalAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	n, _ := strconv.Atoi(port)
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(n))
}
