// What a noresponders run is asked to do (Config), the subjects it asks,
// and the error of an answer that should not have come.

package main

import (
	"errors"
	"time"

	"reqreply/internal/cli"
)

// The subjects the requester asks: GreetJoe twice (answered, then no
// responders), SilentJoe once with -silent (a timeout).
const (
	GreetJoe  = "greet.joe"
	SilentJoe = "silent.joe"
)

// ErrUnexpectedReply is wrapped by Run's error when a request that should
// have gone unanswered got a reply: something other than this run's greeter
// (another -serve, `nats reply 'greet.*' ...`) still serves the subject.
var ErrUnexpectedReply = errors.New("unexpected reply")

// Lockdown is the program's -secure setup: the requester may publish only
// to GreetSubjects and SilentSubjects and read only its own inbox; the responder may take only those
// requests and publish only its replies (see cli.Lockdown).
var Lockdown = cli.Lockdown{Service: []string{GreetSubjects, SilentSubjects}}

// Config is what the noresponders program was asked to do.
type Config struct {
	// Timeout for each request; DefaultTimeout (2 s) unless -timeout.
	Timeout time.Duration
	// Silent adds the contrast: a request to SilentJoe, which a subscriber
	// takes and never answers, so it waits out Timeout (-silent).
	Silent bool
	// Mode: both halves, or only -serve or -request.
	Mode cli.Mode
}

// Check validates cfg before anything connects: the timeout must be
// positive, and -serve and -request exclude each other. The error wraps
// cli.ErrUsage.
func (cfg *Config) Check() error {
	if err := cfg.Mode.Check(); err != nil {
		return err
	}
	if cfg.Timeout <= 0 {
		return cli.Usagef("-timeout %v must be > 0", cfg.Timeout)
	}
	return nil
}
