//go:build race

package testenv

// raceFactor: the race detector slows Priora five- to tenfold, so waits
// for what another goroutine or process does are given longer.
const raceFactor = 8
