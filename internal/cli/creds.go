// Credentials: which server a program connects to and who it is there, from
// the places nats CLI users already keep them: a saved nats CLI context, or
// NATS_* environment variables.

package cli

import (
	"errors"
	"strings"

	"github.com/nats-io/jsm.go/natscontext"
	"github.com/nats-io/nats.go"
)

// The environment variables read for credentials. NATS_URL is read too (see
// Exec). NATS_INBOX_PREFIX is the inbox prefix (nats.CustomInboxPrefix, a
// context's inbox_prefix): the one a locked-down server lets this user
// subscribe to.
var credentialVars = []string{
	"NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CREDS", "NATS_NKEY",
	"NATS_CA", "NATS_CERT", "NATS_KEY", "NATS_INBOX_PREFIX",
}

// ErrContext is wrapped by the error for a nats CLI context that cannot be
// loaded or used (unknown name, bad file, a credential it names that cannot
// be read).
var ErrContext = errors.New("nats context")

// Credentials is where a program's connections go and who they are there:
// the server URLs and the nats.go options carrying the credentials (user and
// password, token, creds file, nkey seed file, TLS CA, client certificate
// and key, inbox prefix). Make one with LoadCredentials.
type Credentials struct {
	// URL is the comma-separated server list; empty means none was given,
	// so an embedded server is used.
	URL string
	// From says where the credentials came from, for messages: "-context
	// prod", "NATS_CONTEXT=prod", "environment" or "" (none).
	From string
	// Options are the nats.go options carrying the credentials, applied to
	// every connection before the caller's own.
	Options []nats.Option
	// Secrets are the passwords and tokens among them, masked in all output.
	Secrets []string
	// InboxPrefix is the inbox prefix set by the context or
	// NATS_INBOX_PREFIX (nats.CustomInboxPrefix), "" for nats.go's _INBOX.
	InboxPrefix string
}

// LoadCredentials returns the credentials for a run. Precedence, first that
// applies:
//
//  1. an explicit flag: -context NAME (contextFlag) loads that nats CLI
//     context (natscontext, from $XDG_CONFIG_HOME/nats/context/NAME.json,
//     ~/.config/nats by default) and uses it whole: its URL, user and
//     password, token, creds, nkey, TLS CA/cert/key and inbox prefix. The
//     NATS_* variables are then ignored;
//  2. the environment: NATS_CONTEXT names a context, and NATS_URL,
//     NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, NATS_NKEY, NATS_CA,
//     NATS_CERT, NATS_KEY and NATS_INBOX_PREFIX each override that
//     context's setting (as the nats CLI does) or stand alone without one;
//  3. the embedded default: nothing given, so no URL and no credentials
//     (Exec then starts an embedded server).
//
// The context the nats CLI has selected (`nats context select`) is never
// used unless named: a program must not connect somewhere the user did not
// say. Credentials without a server (no NATS_URL, no context) are refused:
// the embedded server would ignore them. So are a password without a user
// and a certificate without its key, without a context. Errors wrap ErrUsage; those of a
// context that cannot be loaded or used wrap ErrContext too. No error shows
// a secret.
func LoadCredentials(contextFlag string, getenv func(string) string) (*Credentials, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var name, from string
	var opts []natscontext.Option
	switch {
	case contextFlag != "":
		name, from = contextFlag, "-context "+contextFlag
	case env("NATS_CONTEXT") != "":
		name, from = env("NATS_CONTEXT"), "NATS_CONTEXT="+env("NATS_CONTEXT")
		fallthrough
	default:
		// Alone, these halves would be ignored; with a context they
		// override its own.
		if name == "" && env("NATS_PASSWORD") != "" && env("NATS_USER") == "" {
			return nil, Usagef("NATS_PASSWORD is set without NATS_USER")
		}
		if name == "" && (env("NATS_CERT") == "") != (env("NATS_KEY") == "") {
			return nil, Usagef("NATS_CERT and NATS_KEY go together: a client certificate needs its key")
		}
		opts = []natscontext.Option{
			natscontext.WithServerURL(env("NATS_URL")),
			natscontext.WithUser(env("NATS_USER")),
			natscontext.WithPassword(env("NATS_PASSWORD")),
			natscontext.WithToken(env("NATS_TOKEN")),
			natscontext.WithCreds(env("NATS_CREDS")),
			natscontext.WithNKey(env("NATS_NKEY")),
			natscontext.WithCA(env("NATS_CA")),
			natscontext.WithCertificate(env("NATS_CERT")),
			natscontext.WithKey(env("NATS_KEY")),
			natscontext.WithInboxPrefix(env("NATS_INBOX_PREFIX")),
		}
	}

	var nctx *natscontext.Context
	var err error
	if name != "" {
		// load is true and name is never empty here: an empty name would
		// load the context the nats CLI has selected.
		nctx, err = natscontext.New(name, true, opts...)
		if err != nil {
			return nil, Usagef("%s: %w: %w", from, ErrContext, err)
		}
	} else {
		if env("NATS_URL") == "" {
			for _, k := range credentialVars {
				if env(k) != "" {
					return nil, Usagef("%s is set but NATS_URL is not: the embedded server takes no credentials; set NATS_URL to your server", k)
				}
			}
			return &Credentials{}, nil
		}
		from = "environment"
		nctx, err = natscontext.New("", false, opts...)
		if err != nil {
			return nil, Usagef("environment: %w", err)
		}
	}
	nopts, err := nctx.NATSOptions()
	switch {
	case err != nil && name != "":
		return nil, Usagef("%s: %w: %w", from, ErrContext, err)
	case err != nil:
		return nil, Usagef("%s: %w", from, err)
	}
	// Apply the options to a scratch nats.Options to learn the secrets they
	// carry, also those natscontext resolved from env:// or op://
	// references, so that they are masked like the URL's.
	var scratch nats.Options
	for _, o := range nopts {
		_ = o(&scratch)
	}
	creds := &Credentials{
		URL:         nctx.ServerURL(),
		From:        from,
		Options:     nopts,
		InboxPrefix: scratch.InboxPrefix,
	}
	for _, s := range []string{scratch.Password, scratch.Token, nctx.Password(), nctx.Token()} {
		if s != "" {
			creds.Secrets = append(creds.Secrets, s)
		}
	}
	return creds, nil
}

// ignoredVars returns the NATS_* variables set in the environment, which a
// -context run does not use.
func ignoredVars(getenv func(string) string) []string {
	var set []string
	for _, k := range append([]string{"NATS_URL", "NATS_CONTEXT"}, credentialVars...) {
		if strings.TrimSpace(getenv(k)) != "" {
			set = append(set, k)
		}
	}
	return set
}
