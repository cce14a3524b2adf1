// Masking credentials: nothing this package prints or returns shows a
// password or a token from NATS_URL, whatever shape the URL has.

package cli

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Mask is what stands in for a password or a token in printed URLs and
// errors.
const Mask = "xxxxx"

// splitURLs splits a NATS_URL value into its servers the way nats.go does:
// on commas, each part trimmed of white space.
func splitURLs(urls string) []string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

// userInfo splits one server URL into what comes before its user info (the
// scheme and "://", if the URL has a valid scheme), the user info (before
// the last '@'; a host never holds an '@'), and the rest. ok is false when
// the URL has no '@', so no user info. It never parses the URL, so it works
// on malformed ones too, where a parser would give up and echo the input.
func userInfo(u string) (prefix, info, rest string, ok bool) {
	at := strings.LastIndex(u, "@")
	if at < 0 {
		return "", "", u, false
	}
	start := 0
	if i := strings.Index(u, "://"); i >= 0 && i < at && validScheme(u[:i]) {
		start = i + len("://")
	}
	return u[:start], u[start:at], u[at+1:], true
}

// validScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' or '.').
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// Redact returns urls, a comma-separated list of server URLs as NATS_URL
// holds it, with every password replaced by Mask (nats://alice:xxxxx@host),
// and user info without a password, which nats.go sends as a token, replaced
// whole (nats://xxxxx@host). It works on URLs with or without a scheme and
// on malformed ones (a space or a bad %-escape in the password, a port that
// is not a number), which it masks without parsing. Parts are trimmed and
// joined with ",".
func Redact(urls string) string {
	parts := splitURLs(urls)
	for i, p := range parts {
		prefix, info, rest, ok := userInfo(p)
		if !ok {
			continue
		}
		if user, _, hasPassword := strings.Cut(info, ":"); hasPassword {
			parts[i] = prefix + user + ":" + Mask + "@" + rest
		} else {
			parts[i] = prefix + Mask + "@" + rest
		}
	}
	return strings.Join(parts, ",")
}

// secrets returns the credentials in urls: each password, and each user
// info without a password (a token). Empty ones are left out.
func secrets(urls string) []string {
	var out []string
	for _, p := range splitURLs(urls) {
		_, info, _, ok := userInfo(p)
		if !ok {
			continue
		}
		secret := info
		if _, pw, hasPassword := strings.Cut(info, ":"); hasPassword {
			secret = pw
		}
		if secret != "" {
			out = append(out, secret)
		}
	}
	return out
}

// scrubber replaces known secrets in text, in every form in which Go's
// libraries and nats.go may print them: as given, %-decoded, %-encoded, and
// quoted the way %q and strconv.Quote write them.
type scrubber struct{ forms []string }

// newScrubber returns a scrubber for the credentials in urls and for the
// extra secrets given.
func newScrubber(urls string, extra ...string) *scrubber {
	s := &scrubber{}
	for _, secret := range append(secrets(urls), extra...) {
		s.add(secret)
	}
	return s
}

func (s *scrubber) add(secret string) {
	if secret == "" {
		return
	}
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), url.UserPassword("", secret).String()[1:]}
	if dec, err := url.PathUnescape(secret); err == nil {
		forms = append(forms, dec)
	}
	if dec, err := url.QueryUnescape(secret); err == nil {
		forms = append(forms, dec)
	}
	for _, f := range forms[:len(forms):len(forms)] {
		q := strconv.Quote(f)
		forms = append(forms, q[1:len(q)-1], strings.Trim(strconv.QuoteToASCII(f), `"`))
	}
	for _, f := range forms {
		if f != "" && f != Mask && !slices.Contains(s.forms, f) {
			s.forms = append(s.forms, f)
		}
	}
}

// scrub returns text with every occurrence of every form of every secret
// replaced by Mask. Occurrences that overlap or touch become one Mask. It
// looks only at the text it was given, never at a Mask it put in: a secret
// that occurs in the Mask itself ("x", as a token) is masked once, not
// again inside every Mask, which grew the text fivefold per form until the
// program ran out of memory.
func (s *scrubber) scrub(text string) string {
	if s == nil || len(s.forms) == 0 {
		return text
	}
	var covered []bool
	for _, f := range s.forms {
		for i := 0; i+len(f) <= len(text); {
			j := strings.Index(text[i:], f)
			if j < 0 {
				break
			}
			if covered == nil {
				covered = make([]bool, len(text))
			}
			for k := i + j; k < i+j+len(f); k++ {
				covered[k] = true
			}
			i += j + 1
		}
	}
	if covered == nil {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch {
		case !covered[i]:
			b.WriteByte(text[i])
		case i == 0 || !covered[i-1]:
			b.WriteString(Mask)
		}
	}
	return b.String()
}

// wrap returns err with its message scrubbed. errors.Is still sees every
// error in err's tree (nats.ErrNoServers, context.Canceled, ...), but the
// original errors, whose text may hold a secret, are not reachable through
// Unwrap.
func (s *scrubber) wrap(err error) error {
	if err == nil {
		return nil
	}
	return scrubbedError{msg: s.scrub(err.Error()), err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e scrubbedError) Error() string        { return e.msg }
func (e scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }

// ErrBadURL is wrapped by the error for a NATS_URL that nats.go could not
// parse. The error says which server and why, with its credentials masked.
var ErrBadURL = errors.New("bad server URL")

// CheckURLs parses each server of urls (a comma-separated list, as NATS_URL
// holds it) the way nats.go will (nats:// is assumed when a part has no
// "://"), and returns an error wrapping ErrUsage and ErrBadURL for the first
// one that does not parse. Go's url package puts the whole URL in its
// errors, so the URL is parsed a second time with its user info masked,
// and that error is the one reported; a URL that fails only because of its
// user info gets a message saying so, without it.
func CheckURLs(urls string) error {
	for i, p := range splitURLs(urls) {
		if p == "" {
			return Usagef("NATS_URL server %d of %q is empty: %w", i+1, Redact(urls), ErrBadURL)
		}
		if _, err := parseServer(p); err == nil {
			continue
		}
		masked := Redact(p)
		if _, err := parseServer(masked); err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			return Usagef("NATS_URL server %d, %q: %v: %w", i+1, masked, err, ErrBadURL)
		}
		return Usagef("NATS_URL server %d, %q: the user or password is not valid in a URL (write special characters as %%XX): %w", i+1, masked, ErrBadURL)
	}
	return nil
}

// parseServer parses one server URL as nats.go does.
func parseServer(p string) (*url.URL, error) {
	if !strings.Contains(p, "://") {
		p = "nats://" + p
	}
	return url.Parse(p)
}
