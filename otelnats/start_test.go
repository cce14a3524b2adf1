package otelnats_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"reqreply/internal/testserver"
	"reqreply/otelnats"
)

// StartRequest puts a request the caller sends itself with nats.go's own
// call in the same span as RequestMsg: its trace context rides in the
// message's headers, the responder's span continues that trace, and a
// no-responders answer gives the span error status.
func TestStartRequest(t *testing.T) {
	rec := newRecorded(t)
	s := testserver.New(t)
	resp := connect(t, s.ClientURL(), "responder")
	_, err := resp.Subscribe("start", rec.tel.Handler(func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }))
	require.NoError(t, err)
	require.NoError(t, resp.Flush())
	nc := connect(t, s.ClientURL(), "requester")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cases := []struct {
		subject, errType string
		err              error
	}{
		{subject: "start"},
		{subject: "nobody.home", errType: "no_responders", err: nats.ErrNoResponders},
	}
	for _, tc := range cases {
		t.Run(tc.subject, func(t *testing.T) {
			msg := &nats.Msg{Subject: tc.subject} // no header: StartRequest makes one
			sctx, done := rec.tel.StartRequest(ctx, msg)
			require.NotNil(t, msg.Header)
			assert.NotEmpty(t, msg.Header.Get("traceparent"))
			reply, err := nc.RequestMsgWithContext(sctx, msg)
			done(reply, err)
			require.ErrorIs(t, err, tc.err)

			spans := rec.named("request " + tc.subject)
			require.Len(t, spans, 1)
			assert.Equal(t, trace.SpanKindClient, spans[0].SpanKind())
			if tc.err == nil {
				assert.Equal(t, codes.Unset, spans[0].Status().Code)
				// The responder's span ends after its handler returns,
				// which may be after the reply has arrived here.
				require.Eventually(t, func() bool { return len(rec.named("process start")) == 1 }, 10*time.Second, time.Millisecond)
				process := rec.named("process start")
				assert.Equal(t, spans[0].SpanContext().TraceID(), process[0].SpanContext().TraceID())
				assert.Equal(t, spans[0].SpanContext().SpanID(), process[0].Parent().SpanID())
				return
			}
			assert.Equal(t, codes.Error, spans[0].Status().Code)
			assert.Equal(t, tc.errType, attr(spans[0], otelnats.KeyErrorType).AsString())
		})
	}
}
