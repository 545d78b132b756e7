//go:build race

package eras

// raceEnabled builds mcpgate with the race detector when the tests run
// with it, so that a race inside mcpgate fails them too.
const raceEnabled = true
