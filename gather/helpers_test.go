package gather_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// newEnv starts a fresh embedded server for one test and returns an Env on
// it; its connections are drained and the server stopped when the test ends.
func newEnv(t testing.TB, opts ...testserver.Option) *cli.Env {
	t.Helper()
	s := testserver.New(t, opts...)
	env := cli.NewEnv("multireply", s.ClientURL())
	t.Cleanup(func() { _ = env.Close() })
	return env
}

func connect(t testing.TB, env *cli.Env, role string) *nats.Conn {
	t.Helper()
	nc, err := env.Connect(role)
	require.NoError(t, err)
	return nc
}

// newVariants returns the three variants on nc, each made afresh; the shared
// Mux is closed when the test ends.
func newVariants(t testing.TB, nc *nats.Conn) []gather.Variant {
	t.Helper()
	var vs []gather.Variant
	for _, name := range variants.Names {
		v, release, err := variants.New(name, nc)
		require.NoError(t, err)
		t.Cleanup(func() { _ = release() })
		vs = append(vs, v)
	}
	return vs
}

// baseline is how many subscriptions a variant keeps on the requester's
// connection between gathers: none (the shared Mux keeps its one on its own
// connection).
func baseline(gather.Variant) int { return 0 }

// statusMarker in a sequence stands for a no-responders status message,
// errorMarker for a micro error reply: micro's error headers (code 500,
// "failed") and an empty payload.
const (
	statusMarker = "<503>"
	errorMarker  = "<error>"
)

// Responders for the tests, each subscribed on a connection of its own kind
// and flushed before the test's request goes out.

// echoN starts n responders that answer with "reply from r<i>", naming
// themselves.
func echoN(n int) func(t *testing.T, nc *nats.Conn, subject string) {
	return func(t *testing.T, nc *nats.Conn, subject string) {
		t.Helper()
		names := make([]string, n)
		for i := range names {
			names[i] = "r" + strconv.Itoa(i+1)
		}
		serveNamed(t, nc, subject, 0, names...)
	}
}

// serveNamed subscribes one responder per name to subject on nc and
// flushes. Each answers every request after delay with "reply from <name>"
// and, where the server takes headers, gather.ResponderHeader: name. A plain
// publish (no reply subject) is not answered.
func serveNamed(t testing.TB, nc *nats.Conn, subject string, delay time.Duration, names ...string) {
	t.Helper()
	headers := nc.HeadersSupported()
	for _, name := range names {
		_, err := nc.Subscribe(subject, func(m *nats.Msg) {
			if m.Reply == "" {
				return
			}
			time.Sleep(delay)
			data := []byte("reply from " + name)
			if !headers {
				_ = m.Respond(data)
				return
			}
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(gather.ResponderHeader, name)
			reply.Data = data
			_ = m.RespondMsg(reply)
		})
		require.NoError(t, err)
	}
	require.NoError(t, nc.Flush())
}

// sequence starts one responder that sends each payload, in order, to the
// reply subject of every request (statusMarker: a 503 status message;
// errorMarker: a micro error reply).
// Messages from one connection to one subject keep their order.
func sequence(payloads ...string) func(t *testing.T, nc *nats.Conn, subject string) {
	return func(t *testing.T, nc *nats.Conn, subject string) {
		t.Helper()
		_, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = publishSequence(nc, m.Reply, payloads) })
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
}

// publishSequence publishes each payload, in order, to reply
// (statusMarker: a 503 status message; errorMarker: a micro error reply),
// stopping at the first error.
func publishSequence(nc *nats.Conn, reply string, payloads []string) error {
	for _, p := range payloads {
		m := nats.NewMsg(reply)
		switch p {
		case statusMarker:
			m.Header.Set("Status", "503")
		case errorMarker:
			m.Header.Set(micro.ErrorHeader, "failed")
			m.Header.Set(micro.ErrorCodeHeader, "500")
		default:
			m.Data = []byte(p)
		}
		if err := nc.PublishMsg(m); err != nil {
			return err
		}
	}
	return nil
}

// silent starts a subscriber that takes requests and never answers.
func silent(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	_, err := nc.Subscribe(subject, func(*nats.Msg) {})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

// echoData starts a responder that answers with the request's payload and
// headers, plus its name.
func echoData(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		reply := nats.NewMsg(m.Reply)
		for k, v := range m.Header {
			reply.Header[k] = v
		}
		reply.Header.Set(gather.ResponderHeader, "echo")
		reply.Data = m.Data
		_ = m.RespondMsg(reply)
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

// both runs several responder set-ups on one connection.
func both(fs ...func(t *testing.T, nc *nats.Conn, subject string)) func(t *testing.T, nc *nats.Conn, subject string) {
	return func(t *testing.T, nc *nats.Conn, subject string) {
		for _, f := range fs {
			f(t, nc, subject)
		}
	}
}

// outMsgs is how many messages v has published: the Mux publishes on its
// own connection, the other variants on nc.
func outMsgs(v gather.Variant, nc *nats.Conn) uint64 {
	if m, ok := v.(*gather.Mux); ok && m != nil && m.RC() != nil {
		return m.RC().Stats().OutMsgs
	}
	return nc.Stats().OutMsgs
}

// answersFrom starts one responder that sends, in order, one reply per
// name to the reply subject of every request, each with
// gather.ResponderHeader: name and the name as payload ("" : no header, an
// empty payload; errorMarker+name: a micro error reply from name).
func answersFrom(names ...string) func(t *testing.T, nc *nats.Conn, subject string) {
	return func(t *testing.T, nc *nats.Conn, subject string) {
		t.Helper()
		_, err := nc.Subscribe(subject, func(m *nats.Msg) {
			for _, name := range names {
				reply := nats.NewMsg(m.Reply)
				if id, ok := strings.CutPrefix(name, errorMarker); ok {
					reply.Header.Set(micro.ErrorHeader, "failed")
					reply.Header.Set(micro.ErrorCodeHeader, "500")
					name = id
				} else {
					reply.Data = []byte(name)
				}
				if name != "" {
					reply.Header.Set(gather.ResponderHeader, name)
				}
				if nc.PublishMsg(reply) != nil {
					return
				}
			}
		})
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
}
