package listener

// maxIdleWorkers bounds the goroutines kept waiting for a connection:
// connections run on reused workers (internal/workers), which keep the
// stacks the request path grew.
const maxIdleWorkers = 128
