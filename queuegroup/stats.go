package main

import (
	"slices"
)

// This file holds the few statistics the scenario prints and its tests
// assert on: nearest-rank percentiles of latencies, the max/min ratio of
// per-member counts, and Pearson's chi-square statistic of those counts
// against an even split, with critical values from a fixed table. They are
// computed here, in plain Go, to keep the suite free of a numerics
// dependency; the table says how it was made.

// FairnessAlpha is the false-positive rate of the fairness verdict, as the
// chi-square approximation gives it: a truly even random split is called
// uneven with probability about 1e-6, so a test that asserts on it fails by
// chance about once in a million runs. The approximation is asymptotic: the
// exact rate of a multinomial split is a little higher, 1.1e-6 for 2 members
// with 200 requests each and 2e-6 to 4e-6 at 5 requests per member, which is
// why the report warns below 5 per member and the tests use 200.
const FairnessAlpha = 1e-6

// chiSquareCritical1e6[df-1] is the chi-square critical value for df degrees
// of freedom at an upper-tail probability of 1e-6 (FairnessAlpha): a
// statistic above it happens by chance less than once in a million. Computed
// with mpmath at 40 digits by bisecting the regularized upper incomplete gamma
// function, Q(df/2, x/2) = 1e-6, and rounded up in the third decimal (so the
// approximation's false-positive rate stays at or below 1e-6; see
// FairnessAlpha for the exact one). For example df 2 is
// -2·ln(1e-6) = 27.631, rounded up to 27.632.
var chiSquareCritical1e6 = [...]float64{
	23.929, 27.632, 30.665, 33.377, 35.889, 38.259, 40.522, 42.701, 44.811, 46.864,
	48.866, 50.826, 52.748, 54.636, 56.494, 58.325, 60.131, 61.915, 63.678, 65.421,
	67.147, 68.856, 70.550, 72.229, 73.895, 75.548, 77.189, 78.818, 80.436, 82.045,
	83.643, 85.232, 86.812, 88.384, 89.947, 91.503, 93.051, 94.592, 96.126, 97.653,
	99.174, 100.689, 102.198, 103.701, 105.199, 106.691, 108.178, 109.659, 111.136, 112.609,
	114.076, 115.539, 116.998, 118.453, 119.903, 121.349, 122.792, 124.230, 125.665, 127.097,
	128.525, 129.949, 131.370, 132.788,
}

// MaxDegreesOfFreedom is the largest df the critical-value table covers: 64,
// enough for MaxWorkers members plus one added mid-run.
const MaxDegreesOfFreedom = len(chiSquareCritical1e6)

// ChiSquareCritical returns the critical value of the chi-square distribution
// with df degrees of freedom (1 ≤ df ≤ MaxDegreesOfFreedom) at the upper-tail
// probability FairnessAlpha (1e-6), and false when df is outside the table.
func ChiSquareCritical(df int) (float64, bool) {
	if df < 1 || df > MaxDegreesOfFreedom {
		return 0, false
	}
	return chiSquareCritical1e6[df-1], true
}

// ChiSquareEven returns Pearson's chi-square statistic of counts against an
// even split of their sum, Σ (count − mean)² / mean, and its degrees of
// freedom, len(counts) − 1. Under the hypothesis that each request goes to
// each member with the same probability, as a NATS queue group picks, the
// statistic follows a chi-square distribution with that many degrees of
// freedom (closely when every member expects 5 or more requests). It is 0
// for a perfectly even split, and 0 with df 0 for fewer than two counts or a
// zero sum.
func ChiSquareEven(counts []int) (stat float64, df int) {
	if len(counts) < 2 {
		return 0, 0
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, len(counts) - 1
	}
	mean := float64(total) / float64(len(counts))
	for _, c := range counts {
		d := float64(c) - mean
		stat += d * d / mean
	}
	return stat, len(counts) - 1
}

// EvenSplitRejected reports whether counts are too uneven to come from an
// even random split, at false-positive rate FairnessAlpha: whether their
// ChiSquareEven statistic exceeds ChiSquareCritical for their degrees of
// freedom. It is false for fewer than two counts, and ok is false when the
// degrees of freedom are outside the table.
func EvenSplitRejected(counts []int) (rejected, ok bool) {
	stat, df := ChiSquareEven(counts)
	if df == 0 {
		return false, true
	}
	crit, ok := ChiSquareCritical(df)
	if !ok {
		return false, false
	}
	return stat > crit, true
}

// MaxMin returns the largest and smallest of counts (0, 0 when empty).
func MaxMin(counts []int) (maxCount, minCount int) {
	if len(counts) == 0 {
		return 0, 0
	}
	return slices.Max(counts), slices.Min(counts)
}
