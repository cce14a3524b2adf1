package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
)

// TestTracedWithoutHeaderSupport: with tracing on
// (OTEL_TRACES_EXPORTER=console), against a server without header support
// (NATS_URL), the greetings are answered as they are with tracing off: the
// trace context is left out, not the request.
func TestTracedWithoutHeaderSupport(t *testing.T) {
	// Started in the child too (which runs up to Program), unused there.
	s := testserver.New(t, testserver.WithoutHeaders())
	cmd := clitest.Program(t, main, []string{"OTEL_TRACES_EXPORTER=console", "NATS_URL=" + s.ClientURL()}, "joe")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	assert.Contains(t, string(out), "hello, joe")
	assert.Contains(t, string(out), `"Name":"request greet.joe"`)
}
