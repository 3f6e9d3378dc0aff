// Package e2e proves stateful failover with real fulcrum processes: a pair
// replicating over the authenticated peer link, and three nodes sharing a
// real Redis. TestMain builds the binary once (with -race when the tests
// run with it).
package e2e
