package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli/clitest"
)

// consoleSpan is what TestConsoleTrace reads of a span the console exporter
// printed.
type consoleSpan struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ SpanID string }
}

// TestConsoleTrace: `OTEL_TRACES_EXPORTER=console multireply -max 3`
// prints, after its own output, the gather's span and a span for each of
// the 5 responders' handling of its request, children of the gather's
// span, all with one trace ID. The program runs in a child process: the
// console exporter writes to the stdout the process started with.
func TestConsoleTrace(t *testing.T) {
	cmd := clitest.Program(t, main, []string{"OTEL_TRACES_EXPORTER=console"}, "-responders", "5", "-max", "3")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())

	var spans []consoleSpan
	var text []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			require.Empty(t, spans, "the program's output comes before the spans")
			text = append(text, line)
			continue
		}
		var s consoleSpan
		require.NoError(t, json.Unmarshal([]byte(line), &s), line)
		spans = append(spans, s)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, text)
	assert.Contains(t, text[len(text)-1], "3 replies, stopped: max reached")

	var gathers, processes []consoleSpan
	for _, s := range spans {
		switch s.Name {
		case "gather " + DemoSubject:
			gathers = append(gathers, s)
		case "process " + DemoSubject:
			processes = append(processes, s)
		default:
			t.Errorf("unexpected span %q", s.Name)
		}
	}
	require.Len(t, gathers, 1, "%s", out)
	g := gathers[0]
	// Every responder handles the request, the two slowest after the
	// gather stopped at 3; their spans end before the final drain does.
	assert.Len(t, processes, 5, "%s", out)
	for _, p := range processes {
		assert.Equal(t, g.SpanContext.TraceID, p.SpanContext.TraceID, "one trace")
		assert.Equal(t, g.SpanContext.SpanID, p.Parent.SpanID, "a child of the gather's span")
	}
}
