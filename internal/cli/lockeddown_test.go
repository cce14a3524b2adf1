package cli_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"

	"reqreply/denials"
)

// security/locked-down.conf lets the responder publish nothing but
// replies, through allow_responses. A request whose reply subject is a
// JetStream API subject ($JS.API.>) must not make allow_responses a way to
// call that API as the responder. nats-server (v2.15.3 on) refuses such a
// request at once: "Permissions Violation for Publish with Reply of", to
// the requester, and the responder never gets it (nor any grant to reply
// to it: the server grants no response permission for a $JS.API subject);
// the responder cannot publish there on its own either. A reply to the
// requester's own inbox goes through. PublishChecked returns the refusal
// of the reply subject as a denial, as it does a denied subject.
func TestLockedDownRepliesNeverReachJetStreamAPI(t *testing.T) {
	_, as := clitest.LockedDown(t, "../../security/locked-down.conf")
	connect := func(user, prefix string) (*clitest.Buffer, *nats.Conn) {
		creds, err := cli.LoadCredentials("", func(k string) string { return as(user, prefix)[k] })
		require.NoError(t, err)
		env := cli.FromCredentials("lockdown", creds)
		stderr := &clitest.Buffer{}
		env.Stderr = stderr
		t.Cleanup(func() { assert.NoError(t, env.Close()) })
		nc, err := env.Connect(user)
		require.NoError(t, err)
		return stderr, nc
	}
	svcErr, svc := connect("responder", "")
	requests := make(chan *nats.Msg, 4)
	_, err := denials.SubscribeChecked(context.Background(), svc, "greet.*", "", func() (*nats.Subscription, error) {
		return svc.ChanSubscribe("greet.*", requests)
	})
	require.NoError(t, err)
	reqErr, req := connect("requester", cli.InboxPrefix)
	replies := make(chan *nats.Msg, 4)
	inbox := req.NewInbox()
	_, err = req.ChanSubscribe(inbox, replies)
	require.NoError(t, err)
	require.NoError(t, req.Flush())

	const timeout = 10 * time.Second
	// next returns the next request the responder gets.
	next := func(t *testing.T) *nats.Msg {
		select {
		case m := <-requests:
			return m
		case <-time.After(timeout):
			t.Fatal("the responder never got the request")
			return nil
		}
	}
	tests := []struct {
		name  string
		reply string
		// refused: the server refuses the request itself; else the
		// responder gets it and its reply goes through.
		refused bool
	}{
		{name: "the requester's inbox", reply: inbox},
		{name: "JetStream API: account info", reply: "$JS.API.INFO", refused: true},
		{name: "JetStream API: stream delete", reply: "$JS.API.STREAM.DELETE.ORDERS", refused: true},
		{name: "JetStream API: consumer create", reply: "$JS.API.CONSUMER.CREATE.ORDERS", refused: true},
		{name: "JetStream API of a domain", reply: "$JS.hub.API.STREAM.DELETE.ORDERS", refused: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			subject := "greet." + strconv.Itoa(i)
			err := denials.PublishChecked(context.Background(), req, &nats.Msg{Subject: subject, Reply: tc.reply})
			if !tc.refused {
				require.NoError(t, err)
				m := next(t)
				require.Equal(t, tc.reply, m.Reply)
				require.NoError(t, denials.PublishChecked(context.Background(), svc, &nats.Msg{Subject: m.Reply, Data: []byte("hello")}))
				select {
				case r := <-replies:
					assert.Equal(t, "hello", string(r.Data))
				case <-time.After(timeout):
					t.Fatal("the allowed reply never came")
				}
				return
			}
			require.ErrorIs(t, err, denials.ErrDenied)
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.Contains(t, err.Error(), `"`+tc.reply+`"`)

			// The server reads the requester's messages in order: a request
			// sent after the refused one reaches the responder, and it is
			// the next one the responder gets.
			require.NoError(t, req.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox}))
			assert.Equal(t, inbox, next(t).Reply, "the refused request reached the responder")

			// Nor can the responder publish there itself.
			err = denials.PublishChecked(context.Background(), svc, &nats.Msg{Subject: tc.reply})
			require.ErrorIs(t, err, denials.ErrDenied)
			assert.Contains(t, err.Error(), `"`+tc.reply+`"`)
		})
	}
	require.NoError(t, svc.Flush())
	require.NoError(t, req.Flush())
	assert.Empty(t, svcErr.String(), "each denial is PublishChecked's error, not also printed")
	assert.Empty(t, reqErr.String(), "each refusal is PublishChecked's error, not also printed")
}
