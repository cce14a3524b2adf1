package main

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestChiSquareEven(t *testing.T) {
	tests := []struct {
		name   string
		counts []int
		stat   float64
		df     int
	}{
		{name: "even", counts: []int{10, 10, 10}, stat: 0, df: 2},
		{name: "uneven", counts: []int{20, 10, 0}, stat: 20, df: 2}, // (100 + 0 + 100) / 10
		{name: "two", counts: []int{15, 5}, stat: 5, df: 1},         // (25 + 25) / 10
		{name: "one member", counts: []int{7}, stat: 0, df: 0},
		{name: "none", counts: nil, stat: 0, df: 0},
		{name: "nothing counted", counts: []int{0, 0}, stat: 0, df: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stat, df := ChiSquareEven(tc.counts)
			assert.InDelta(t, tc.stat, stat, 1e-9)
			assert.Equal(t, tc.df, df)
		})
	}
}

func TestChiSquareCritical(t *testing.T) {
	// With 2 degrees of freedom the tail is exp(-x/2): x = -2 ln(1e-6).
	crit, ok := ChiSquareCritical(2)
	assert.True(t, ok)
	assert.InDelta(t, -2*math.Log(FairnessAlpha), crit, 0.001)
	// With 1 it is the square of the normal quantile at 1e-6/2 (4.8916).
	crit, ok = ChiSquareCritical(1)
	assert.True(t, ok)
	assert.InDelta(t, 4.8916*4.8916, crit, 0.01)
	// The table rises with the degrees of freedom and covers MaxWorkers+1.
	prev := 0.0
	for df := 1; df <= MaxDegreesOfFreedom; df++ {
		crit, ok := ChiSquareCritical(df)
		assert.True(t, ok, "df %d", df)
		assert.Greater(t, crit, prev, "df %d", df)
		prev = crit
	}
	assert.GreaterOrEqual(t, MaxDegreesOfFreedom, MaxWorkers)
	for _, df := range []int{0, -1, MaxDegreesOfFreedom + 1} {
		_, ok := ChiSquareCritical(df)
		assert.False(t, ok, "df %d", df)
	}
}

func TestEvenSplitRejected(t *testing.T) {
	tests := []struct {
		counts   []int
		rejected bool
	}{
		{[]int{100, 100, 100}, false},
		{[]int{110, 95, 95}, false},
		{[]int{200, 50, 50}, true}, // stat 150
		{[]int{300, 0, 0}, true},
		{[]int{5}, false},
	}
	for _, tc := range tests {
		rejected, ok := EvenSplitRejected(tc.counts)
		assert.True(t, ok)
		assert.Equal(t, tc.rejected, rejected, "%v", tc.counts)
	}
}

func TestWriteSpread(t *testing.T) {
	tests := []struct {
		counts []int
		want   string
	}{
		{[]int{30}, "spread: one member took every request\n"},
		{[]int{10, 10, 10}, "spread: max/min 1.00 (10/10); chi-square 0.00 with 2 degrees of freedom: consistent with an even random split (rejected above 27.63, p < 1e-6)\n"},
		{[]int{300, 0, 0}, "spread: max/min ∞ (300/0); chi-square 600.00 with 2 degrees of freedom: NOT an even random split (rejected above 27.63, p < 1e-6)\n"},
		{[]int{2, 1}, "spread: max/min 2.00 (2/1); chi-square 0.33 with 1 degree of freedom: consistent with an even random split (rejected above 23.93, p < 1e-6); fewer than 5 requests per member, too few for the figure to mean much\n"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		writeSpread(&out, tc.counts)
		assert.Equal(t, tc.want, out.String())
	}
}
