//go:build race

package soak

// raceEnabled builds mcpgate with the race detector when the tests run
// with it, so that a race inside mcpgate fails the soak too.
const raceEnabled = true
