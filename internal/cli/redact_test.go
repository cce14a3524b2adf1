package cli

import (
	"context"
	"flag"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedactShapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "nats://127.0.0.1:4222", want: "nats://127.0.0.1:4222"},
		{in: "nats://alice:s3cret@a:4222", want: "nats://alice:xxxxx@a:4222"},
		{in: "nats://a:4222, nats://bob:pw@b:4222", want: "nats://a:4222,nats://bob:xxxxx@b:4222"},
		{in: "nats://s3cret-token@a:4222", want: "nats://xxxxx@a:4222"},
		{in: "alice:s3cretPW@127.0.0.1:14223", want: "alice:xxxxx@127.0.0.1:14223"},
		{in: "s3cretTOKEN@127.0.0.1:14223", want: "xxxxx@127.0.0.1:14223"},
		{in: "nats://alice:s3cret PW@a:4222", want: "nats://alice:xxxxx@a:4222"},
		{in: "nats://alice:s3cret%zzPW@a:4222", want: "nats://alice:xxxxx@a:4222"},
		{in: "nats://alice:s3cretPW@a:port", want: "nats://alice:xxxxx@a:port"},
		{in: "nats://alice:s3c/ret@PW@a:4222", want: "nats://alice:xxxxx@a:4222"},
		{in: "tls://alice:s3c:ret@a", want: "tls://alice:xxxxx@a"},
		{in: "garbage", want: "garbage"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			assert.Equal(t, tc.want, Redact(tc.in))
		})
	}
}

// noSecret runs what the programs run on a NATS_URL, and fails t if marker
// appears in any output: Redact, CheckURLs, Env.Connect's error, and what
// Exec prints on stderr.
func noSecret(t *testing.T, natsURL, marker string) {
	t.Helper()
	var outputs []string
	outputs = append(outputs, Redact(natsURL))
	checkErr := CheckURLs(natsURL)
	if checkErr != nil {
		outputs = append(outputs, checkErr.Error())
	}
	// Dial only loopback addresses: fuzzed host names would each wait for
	// DNS, and other addresses for a dial timeout.
	dial := checkErr != nil
	if checkErr == nil {
		dial = true
		for _, p := range splitURLs(natsURL) {
			u, err := parseServer(p)
			if ip := net.ParseIP(u.Hostname()); err != nil || ip == nil || !ip.IsLoopback() {
				dial = false
			}
		}
	}
	if dial {
		e := NewEnv("scen", natsURL)
		var stderr syncBuffer
		e.Stderr = &stderr
		_, err := e.Connect("requester", nats.Timeout(ConnectTimeout))
		if err != nil {
			outputs = append(outputs, err.Error())
		}
		require.NoError(t, e.Close())
		outputs = append(outputs, stderr.String())

		stderr = syncBuffer{}
		fs := flag.NewFlagSet("prog", flag.ContinueOnError)
		run := func(_ context.Context, e *Env) error {
			_, err := e.Connect("requester")
			return err
		}
		Exec(fs, nil, nil, run, env(natsURL, false), &stderr)
		outputs = append(outputs, stderr.String())
	}
	for _, out := range outputs {
		assert.NotContains(t, out, marker, "URL %q", natsURL)
	}
}

// TestNoSecretPrinted is the table of URL shapes that printed a secret
// before: without a scheme, and malformed in the ways whose errors from
// net/url echo the URL.
func TestNoSecretPrinted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	const pw = "S3CR3TPW"
	tests := []string{
		"nats://alice:" + pw + "@" + closed,
		"alice:" + pw + "@" + closed,
		pw + "@" + closed,
		"nats://" + pw + "@" + closed,
		"nats://alice:" + pw + " x@" + closed,
		"alice:" + pw + " x@" + closed,
		"nats://alice:" + pw + "%zz@" + closed,
		"nats://alice:" + pw + "%@" + closed,
		"nats://alice:" + pw + "@127.0.0.1:port",
		"alice:" + pw + "@127.0.0.1:port",
		"nats://alice:" + pw + "/x@" + closed,
		"nats://alice:" + pw + "@127.0.0.1:4222/%zz",
		"nats://alice:" + pw + "@[::1",
		"nats://alice:" + pw + "@" + closed + ",nats://bob:" + pw + "2@127.0.0.1:x",
		"nats://alice:" + url.QueryEscape(pw+" ü") + "@" + closed,
		"nats://al ice:" + pw + "@" + closed,
		"alice:" + pw + "://x@" + closed,
		"nat$://alice:" + pw + "@" + closed,
		"nats://alice:" + pw + "\t@" + closed,
		"nats://alice:" + pw + "\x00@" + closed,
	}
	for _, u := range tests {
		t.Run(u, func(t *testing.T) { noSecret(t, u, "S3CR3T") })
	}
}

// FuzzNoSecretPrinted: whatever surrounds a password or token in NATS_URL,
// no output shows it. The secret starts with a marker the rest of the
// output never contains; the fuzzer picks everything else. A ',' in the
// user info is left out: it splits NATS_URL into two servers, for nats.go
// too.
func FuzzNoSecretPrinted(f *testing.F) {
	f.Add("nats://", "alice", "pw", "127.0.0.1:1", false)
	f.Add("", "alice", "pw", "127.0.0.1:1", false)
	f.Add("nats://", "alice", " pw%zz", "127.0.0.1:port", false)
	f.Add("tls://", "", "tok", "127.0.0.1:1/%zz", true)
	f.Add("", "bob", "p@w", "[::1", false)
	f.Fuzz(func(t *testing.T, prefix, user, rest, host string, token bool) {
		const marker = "S3CR3T"
		secret := marker + rest
		if strings.Contains(user, ",") || strings.Contains(secret, ",") {
			t.Skip("a comma splits the server list")
		}
		natsURL := prefix + user + ":" + secret + "@" + host
		if token {
			if strings.Contains(secret, ":") {
				t.Skip("a token with ':' is a user and a password")
			}
			natsURL = prefix + secret + "@" + host
		}
		noSecret(t, natsURL, marker)
	})
}

// TestScrubSecretInMask: a token made of the Mask's own letter ("x") ran
// every later form of it over the Masks already put in, growing the text
// fivefold per form until the program ran out of memory
// (NATS_URL="nats://x@host:1,nats://bob:pw@host:2"). Occurrences are masked
// in one pass over the text, overlapping ones as one Mask.
func TestScrubSecretInMask(t *testing.T) {
	tests := []struct {
		name, urls, text, want string
	}{
		{name: "token x", urls: "nats://x@a:1", text: "connect to x and x", want: "connect to xxxxx and xxxxx"},
		{name: "token xx", urls: "xx@a:1", text: "xxxxx", want: "xxxxx"},
		{name: "token is the mask", urls: "nats://xxxxx@a:1", text: "at xxxxx@a", want: "at xxxxx@a"},
		{name: "overlapping secrets", urls: "nats://u:ab@a:1,nats://v:bcd@b:1", text: "1abcd2", want: "1xxxxx2"},
		{name: "two occurrences touching", urls: "nats://u:pw@a:1", text: "pwpw!", want: "xxxxx!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, newScrubber(tc.urls).scrub(tc.text))
		})
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	for _, tok := range []string{"x", "xx", "xxxx", "xxxxx", "xxxxxx"} {
		t.Run("Exec with token "+tok, func(t *testing.T) {
			noSecret(t, "nats://"+tok+"@"+closed+",nats://bob:S3CR3TPW@"+closed, "S3CR3T")
		})
	}
}
