//go:build !race

package gather_test

// raceDetector is true when the tests run with -race.
const raceDetector = false
