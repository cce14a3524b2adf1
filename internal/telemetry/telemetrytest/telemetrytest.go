// Package telemetrytest holds what the tests of internal/telemetry, cli
// and the programs share to read a -metrics endpoint.
package telemetrytest

import (
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// metricsLine is the line cli.Exec prints when -metrics serves.
var metricsLine = regexp.MustCompile(`serving metrics at (http://\S+/metrics)`)

// MetricsURL returns the URL in the "serving metrics at URL" line of a
// program's stderr, failing the test when there is none.
func MetricsURL(t *testing.T, stderr string) string {
	t.Helper()
	m := metricsLine.FindStringSubmatch(stderr)
	require.NotNil(t, m, "no metrics line in:\n%s", stderr)
	return m[1]
}

// Scrape returns the Prometheus text served at url (status 200), read on a
// client that keeps no connection open (none is left for goleak).
func Scrape(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
