//go:build !race

package rooms

const raceOn = false
