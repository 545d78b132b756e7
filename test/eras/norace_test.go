//go:build !race

package eras

const raceEnabled = false
