//go:build !linux

package httpproxy

// parker is Linux only; elsewhere idle connections keep their goroutine.
type parker struct{}

func getParker() *parker           { return nil }
func (p *parker) park(*live) bool  { return false }
func (p *parker) claim(*live) bool { return false }

// Parked is the number of connections parked now: none off Linux.
func Parked() int { return 0 }
