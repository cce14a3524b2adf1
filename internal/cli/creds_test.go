package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"

	"reqreply/denials"
)

// vars returns a getenv over m.
func vars(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// contextDir makes an empty nats CLI config dir for this test and points
// XDG_CONFIG_HOME at it, where natscontext reads contexts from.
func contextDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "nats", "context"), 0o700))
	return dir
}

// saveContext writes a nats CLI context file, as `nats context save` does.
func saveContext(t *testing.T, dir, name string, settings map[string]any) {
	t.Helper()
	data, err := json.Marshal(settings)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nats", "context", name+".json"), data, 0o600))
}

// connectWith loads the credentials as Exec would, connects, and proves the
// connection works with a request to itself.
func connectWith(t *testing.T, contextName string, getenv func(string) string) error {
	t.Helper()
	creds, err := LoadCredentials(contextName, getenv)
	if err != nil {
		return err
	}
	env := FromCredentials("prog", creds)
	var stderr syncBuffer
	env.Stderr = &stderr
	defer func() { assert.NoError(t, env.Close()) }()
	nc, err := env.Connect("client")
	if err != nil {
		for _, s := range creds.Secrets {
			assert.NotContains(t, err.Error(), s)
		}
		return err
	}
	_, err = nc.Subscribe("ping", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
	require.NoError(t, err)
	reply, err := denials.Request(context.Background(), nc, nats.NewMsg("ping"))
	require.NoError(t, err)
	assert.Equal(t, "pong", string(reply.Data))
	for _, s := range creds.Secrets {
		assert.NotContains(t, stderr.String(), s)
	}
	if creds.InboxPrefix != "" {
		assert.True(t, strings.HasPrefix(nc.NewInbox(), creds.InboxPrefix+"."))
	}
	return nil
}

func TestCredentialsPrecedence(t *testing.T) {
	dir := contextDir(t)
	saveContext(t, dir, "ctx", map[string]any{"url": "nats://ctx.example:4222", "inbox_prefix": "_INBOX_ctx"})
	// The nats CLI's selected context: never used unless named.
	saveContext(t, dir, "selected", map[string]any{"url": "nats://selected.example:4222"})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nats", "context.txt"), []byte("selected"), 0o600))

	tests := []struct {
		name     string
		flag     string
		env      map[string]string
		wantURL  string
		wantFrom string
		inbox    string
		wantErr  []error
	}{
		{name: "nothing: embedded, not the selected context", wantURL: ""},
		{name: "NATS_URL", env: map[string]string{"NATS_URL": "nats://env.example:4222"}, wantURL: "nats://env.example:4222", wantFrom: "environment"},
		{name: "-context wins over the environment", flag: "ctx",
			env:     map[string]string{"NATS_URL": "nats://env.example:4222", "NATS_CONTEXT": "selected"},
			wantURL: "nats://ctx.example:4222", wantFrom: "-context ctx", inbox: "_INBOX_ctx"},
		{name: "NATS_CONTEXT", env: map[string]string{"NATS_CONTEXT": "ctx"}, wantURL: "nats://ctx.example:4222", wantFrom: "NATS_CONTEXT=ctx", inbox: "_INBOX_ctx"},
		{name: "NATS_URL overrides NATS_CONTEXT's", env: map[string]string{"NATS_CONTEXT": "ctx", "NATS_URL": "nats://env.example:4222", "NATS_INBOX_PREFIX": "_INBOX_env"},
			wantURL: "nats://env.example:4222", wantFrom: "NATS_CONTEXT=ctx", inbox: "_INBOX_env"},
		{name: "unknown context", flag: "nope", wantErr: []error{ErrUsage, ErrContext}},
		{name: "bad context name", env: map[string]string{"NATS_CONTEXT": "../x"}, wantErr: []error{ErrUsage, ErrContext}},
		{name: "credentials without a server", env: map[string]string{"NATS_USER": "u", "NATS_PASSWORD": "p"}, wantErr: []error{ErrUsage}},
		{name: "password without user", env: map[string]string{"NATS_URL": "nats://h:1", "NATS_PASSWORD": "p"}, wantErr: []error{ErrUsage}},
		{name: "certificate without key", env: map[string]string{"NATS_URL": "nats://h:1", "NATS_CERT": "c.pem"}, wantErr: []error{ErrUsage}},
		{name: "a password overriding the context's", env: map[string]string{"NATS_CONTEXT": "ctx", "NATS_PASSWORD": "p"},
			wantURL: "nats://ctx.example:4222", wantFrom: "NATS_CONTEXT=ctx", inbox: "_INBOX_ctx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := LoadCredentials(tc.flag, vars(tc.env))
			if tc.wantErr != nil {
				require.Error(t, err)
				for _, want := range tc.wantErr {
					assert.ErrorIs(t, err, want)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantURL, creds.URL)
			assert.Equal(t, tc.wantFrom, creds.From)
			assert.Equal(t, tc.inbox, creds.InboxPrefix)
		})
	}
}

// Through Exec: a context's server is used, and what the environment also
// says is named as not used, without its secrets.
func TestExecContext(t *testing.T) {
	dir := contextDir(t)
	s := testserver.New(t, testserver.WithUsers(&server.User{Username: "alice", Password: "ctx-Pw-9"}))
	saveContext(t, dir, "local", map[string]any{"url": s.ClientURL(), "user": "alice", "password": "ctx-Pw-9"})
	saveContext(t, dir, "wrong", map[string]any{"url": s.ClientURL(), "user": "alice", "password": "wrong-Pw-7"})
	run := func(ctx context.Context, env *Env) error {
		nc, err := env.Connect("client")
		if err != nil {
			return err
		}
		return nc.Flush()
	}
	getenv := vars(map[string]string{"NATS_URL": "nats://127.0.0.1:1", "NATS_PASSWORD": "env-Pw-8", "NATS_USER": "bob"})
	var stderr syncBuffer
	code := Exec(flag.NewFlagSet("prog", flag.ContinueOnError), []string{"-context", "local"}, nil, run, getenv, &stderr)
	assert.Equal(t, ExitOK, code, stderr.String())
	assert.Contains(t, stderr.String(), "-context local is used whole; not used: NATS_URL, NATS_USER, NATS_PASSWORD")

	stderr = syncBuffer{}
	code = Exec(flag.NewFlagSet("prog", flag.ContinueOnError), []string{"-context", "wrong"}, nil, run, vars(nil), &stderr)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, stderr.String(), "uthorization")
	assert.NotContains(t, stderr.String(), "wrong-Pw-7")
}

func TestCredentialsUserPasswordToken(t *testing.T) {
	contextDir(t)
	users := testserver.New(t, testserver.WithUsers(&server.User{Username: "alice", Password: "s3cret Pw%"}))
	token := testserver.New(t, func(o *server.Options) { o.Authorization = "tok-En-42" })
	tests := []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"user and password", map[string]string{"NATS_URL": users.ClientURL(), "NATS_USER": "alice", "NATS_PASSWORD": "s3cret Pw%"}, true},
		{"wrong password", map[string]string{"NATS_URL": users.ClientURL(), "NATS_USER": "alice", "NATS_PASSWORD": "bad Pw%x"}, false},
		{"token", map[string]string{"NATS_URL": token.ClientURL(), "NATS_TOKEN": "tok-En-42"}, true},
		{"wrong token", map[string]string{"NATS_URL": token.ClientURL(), "NATS_TOKEN": "tok-En-43"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := connectWith(t, "", vars(tc.env))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.NotContains(t, err.Error(), tc.env["NATS_PASSWORD"]+tc.env["NATS_TOKEN"])
		})
	}
}

// pki is a CA and the certificates it signed, written as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	server                                           tls.Certificate
	pool                                             *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	leaf := func(serial int64, usage x509.ExtKeyUsage, name string) (certPath, keyPath string, pair tls.Certificate) {
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		certPath, keyPath = write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
		pair, err = tls.LoadX509KeyPair(certPath, keyPath)
		require.NoError(t, err)
		return certPath, keyPath, pair
	}
	p := &pki{ca: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.serverCert, p.serverKey, p.server = leaf(2, x509.ExtKeyUsageServerAuth, "server")
	p.clientCert, p.clientKey, _ = leaf(3, x509.ExtKeyUsageClientAuth, "client")
	return p
}

func TestCredentialsTLS(t *testing.T) {
	dir := contextDir(t)
	p := newPKI(t)
	plain := testserver.New(t, testserver.WithTLS(&tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}))
	mutual := testserver.New(t, testserver.WithTLS(&tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}))
	tlsURL := func(s *server.Server) string { return strings.Replace(s.ClientURL(), "nats://", "tls://", 1) }
	saveContext(t, dir, "mtls", map[string]any{"url": tlsURL(mutual), "ca": p.ca, "cert": p.clientCert, "key": p.clientKey})

	tests := []struct {
		name string
		flag string
		env  map[string]string
		ok   bool
	}{
		{"tls:// URL with NATS_CA", "", map[string]string{"NATS_URL": tlsURL(plain), "NATS_CA": p.ca}, true},
		{"nats:// URL, server requires TLS, NATS_CA", "", map[string]string{"NATS_URL": plain.ClientURL(), "NATS_CA": p.ca}, true},
		{"tls:// URL without the CA", "", map[string]string{"NATS_URL": tlsURL(plain)}, false},
		{"client certificate required, none given", "", map[string]string{"NATS_URL": tlsURL(mutual), "NATS_CA": p.ca}, false},
		{"client certificate from NATS_CERT and NATS_KEY", "", map[string]string{"NATS_URL": tlsURL(mutual), "NATS_CA": p.ca, "NATS_CERT": p.clientCert, "NATS_KEY": p.clientKey}, true},
		{"client certificate from a context", "mtls", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := connectWith(t, tc.flag, vars(tc.env))
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

// TestCredentialsDecentralized: an operator, an account and a user, their
// JWTs signed in the test; the server trusts the operator; the user's creds
// file (JWT and seed) and a plain nkey user connect from the environment and
// from a context.
func TestCredentialsDecentralized(t *testing.T) {
	dir := contextDir(t)
	operator, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opPub, err := operator.PublicKey()
	require.NoError(t, err)
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(operator)
	require.NoError(t, err)
	decodedOp, err := jwt.DecodeOperatorClaims(opJWT)
	require.NoError(t, err)

	account, err := nkeys.CreateAccount()
	require.NoError(t, err)
	accPub, err := account.PublicKey()
	require.NoError(t, err)
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(operator)
	require.NoError(t, err)

	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	userPub, err := user.PublicKey()
	require.NoError(t, err)
	uc := jwt.NewUserClaims(userPub)
	uc.IssuerAccount = accPub
	userJWT, err := uc.Encode(account)
	require.NoError(t, err)
	seed, err := user.Seed()
	require.NoError(t, err)
	credsFile, err := jwt.FormatUserConfig(userJWT, seed)
	require.NoError(t, err)
	credsPath := filepath.Join(t.TempDir(), "user.creds")
	require.NoError(t, os.WriteFile(credsPath, credsFile, 0o600))

	resolver := &server.MemAccResolver{}
	require.NoError(t, resolver.Store(accPub, accJWT))
	jwtServer := testserver.New(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{decodedOp}
		o.AccountResolver = resolver
		o.NoSystemAccount = true
	})

	nkeyUser, err := nkeys.CreateUser()
	require.NoError(t, err)
	nkeyPub, err := nkeyUser.PublicKey()
	require.NoError(t, err)
	nkeySeed, err := nkeyUser.Seed()
	require.NoError(t, err)
	seedPath := filepath.Join(t.TempDir(), "user.nk")
	require.NoError(t, os.WriteFile(seedPath, nkeySeed, 0o600))
	nkeyServer := testserver.New(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: nkeyPub}} })

	saveContext(t, dir, "jwt", map[string]any{"url": jwtServer.ClientURL(), "creds": credsPath})
	saveContext(t, dir, "nkey", map[string]any{"url": nkeyServer.ClientURL(), "nkey": seedPath})

	tests := []struct {
		name string
		flag string
		env  map[string]string
		ok   bool
	}{
		{"creds file from NATS_CREDS", "", map[string]string{"NATS_URL": jwtServer.ClientURL(), "NATS_CREDS": credsPath}, true},
		{"creds file from a context", "jwt", nil, true},
		{"no creds", "", map[string]string{"NATS_URL": jwtServer.ClientURL()}, false},
		{"nkey from NATS_NKEY", "", map[string]string{"NATS_URL": nkeyServer.ClientURL(), "NATS_NKEY": seedPath}, true},
		{"nkey from a context", "nkey", nil, true},
		{"missing creds file", "", map[string]string{"NATS_URL": jwtServer.ClientURL(), "NATS_CREDS": credsPath + ".gone"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := connectWith(t, tc.flag, vars(tc.env))
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.NotContains(t, err.Error(), string(seed))
			}
		})
	}
}

// A context's password and token, also one natscontext resolves from an
// env:// reference, are masked in everything Exec prints.
func TestContextSecretsMasked(t *testing.T) {
	dir := contextDir(t)
	t.Setenv("CTX_SECRET_FOR_TEST", "from-Env-Pw-5")
	saveContext(t, dir, "pw", map[string]any{"url": "nats://127.0.0.1:1", "user": "alice", "password": "ctx-Pw-3"})
	saveContext(t, dir, "ref", map[string]any{"url": "nats://127.0.0.1:1", "user": "alice", "password": "env://CTX_SECRET_FOR_TEST"})
	saveContext(t, dir, "url", map[string]any{"url": "nats://alice:url-Pw-4@127.0.0.1:1"})
	saveContext(t, dir, "tok", map[string]any{"url": "nats://127.0.0.1:1", "token": "ctx-Tok-6"})
	for name, secret := range map[string]string{"pw": "ctx-Pw-3", "ref": "from-Env-Pw-5", "url": "url-Pw-4", "tok": "ctx-Tok-6"} {
		t.Run(name, func(t *testing.T) {
			creds, err := LoadCredentials(name, vars(nil))
			require.NoError(t, err)
			if name != "url" {
				assert.Contains(t, creds.Secrets, secret)
			}
			var stderr syncBuffer
			code := Exec(flag.NewFlagSet("prog", flag.ContinueOnError), []string{"-context", name, "-max-reconnects", "0"}, nil,
				func(ctx context.Context, env *Env) error {
					env.Logf("debug: %s %s", secret, creds.URL)
					_, err := env.Connect("client")
					return err
				}, vars(nil), &stderr)
			assert.Equal(t, ExitFailure, code)
			assert.NotContains(t, stderr.String(), secret)
			assert.Contains(t, stderr.String(), Mask)
		})
	}
}

// Passwords and tokens from NATS_PASSWORD and NATS_TOKEN, of any shape, are
// masked in all Exec prints, whether the connection is refused or the
// server denies the credentials.
func TestEnvSecretsNotPrinted(t *testing.T) {
	contextDir(t)
	s := testserver.New(t, testserver.WithUsers(&server.User{Username: "alice", Password: "right"}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "nats://" + l.Addr().String()
	require.NoError(t, l.Close())
	for _, secret := range []string{"S3CR3T", "S3CR3T with spaces", "S3CR3T%zz", `S3CR3T"quoted'`, "S3CR3Tü€", "S3CR3T@host:1"} {
		for _, server := range []string{s.ClientURL(), closed} {
			for _, kind := range []string{"NATS_PASSWORD", "NATS_TOKEN"} {
				t.Run(kind+" "+secret+" "+server, func(t *testing.T) {
					vs := map[string]string{"NATS_URL": server, kind: secret}
					if kind == "NATS_PASSWORD" {
						vs["NATS_USER"] = "alice"
					}
					var stderr syncBuffer
					code := Exec(flag.NewFlagSet("prog", flag.ContinueOnError), []string{"-max-reconnects", "0"}, nil,
						func(ctx context.Context, env *Env) error {
							_, err := env.Connect("client")
							return err
						}, vars(vs), &stderr)
					assert.Equal(t, ExitFailure, code)
					assert.NotContains(t, stderr.String(), "S3CR3T")
				})
			}
		}
	}
}
