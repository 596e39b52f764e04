//go:build race

package rooms

// raceOn: the race detector drops sync.Pool items at random, so counts of
// allocations mean nothing under it.
const raceOn = true
