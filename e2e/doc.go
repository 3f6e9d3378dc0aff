// Package e2e holds end-to-end tests that drive fulcrum from outside Go: a
// real browser (headless Chromium through playwright-core, see browser/)
// loading pages through a fulcrum started in-process with real backends.
// See README.md for what each test proves and what it needs.
package e2e
