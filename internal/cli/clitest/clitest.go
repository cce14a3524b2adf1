// Package clitest holds what the scenario programs' tests share to check
// the promises internal/cli makes for every program.
package clitest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// CheckFlags runs the command line args (split on spaces) through cli.Exec
// as a program's main does, with the flag set and check that newFlags makes
// and a run that connects nowhere. NATS_URL is "nats://127.0.0.1:1", or
// unset when unset is true. With want empty the run must happen and exit 0;
// otherwise it must not, and the program must exit 2 with one line on
// stderr that contains want. opts are the program's cli.Main options (its
// cli.Secure, for -secure); with -secure a run that happens connects to the
// embedded locked-down server, which it then closes.
func CheckFlags(t *testing.T, newFlags func() (*flag.FlagSet, func() error), args string, unset bool, want string, opts ...cli.Option) {
	t.Helper()
	fs, check := newFlags()
	getenv := func(key string) string {
		if key == "NATS_URL" && !unset {
			return "nats://127.0.0.1:1"
		}
		return ""
	}
	ran := false
	run := func(context.Context, *cli.Env) error { ran = true; return nil }
	var stderr bytes.Buffer
	code := cli.Exec(fs, strings.Fields(args), check, run, getenv, &stderr, opts...)
	if want == "" {
		assert.Equal(t, cli.ExitOK, code, stderr.String())
		assert.True(t, ran)
		return
	}
	assert.Equal(t, cli.ExitUsage, code)
	assert.False(t, ran)
	assert.Contains(t, stderr.String(), want)
	assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %s", stderr.String())
}

// Buffer is a bytes.Buffer that handlers and programs may write to from
// their own goroutines while the test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FirstWrite is a writer that discards what it is given and closes Ready on
// its first write: how a test learns that a program has begun to print (a
// -serve half is serving) without reading its output.
type FirstWrite struct {
	once  sync.Once
	Ready chan struct{}
}

// NewFirstWrite returns a FirstWrite whose Ready is open.
func NewFirstWrite() *FirstWrite { return &FirstWrite{Ready: make(chan struct{})} }

// Write closes Ready the first time and discards p.
func (w *FirstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.Ready) })
	return len(p), nil
}

// LockedDown starts a nats-server from security/locked-down.conf (path, as
// the calling test's package sees it: "../security/locked-down.conf"), the
// file the README documents, exactly as nats-server -c would, with the
// passwords of its users requester, responder and other set in the
// environment it reads them from. It returns those passwords by user, and
// as: the environment of a program run as user with the inbox prefix
// given ("" for none), for cli.Exec's getenv.
func LockedDown(t *testing.T, path string) (passwords map[string]string, as func(user, prefix string) map[string]string) {
	t.Helper()
	passwords = map[string]string{"requester": "req-Pw-1", "responder": "resp-Pw-2", "other": "other-Pw-3"}
	t.Setenv("REQUESTER_PASSWORD", passwords["requester"])
	t.Setenv("RESPONDER_PASSWORD", passwords["responder"])
	t.Setenv("OTHER_PASSWORD", passwords["other"])
	s := testserver.NewConfigFile(t, path)
	as = func(user, prefix string) map[string]string {
		return map[string]string{"NATS_URL": s.ClientURL(), "NATS_USER": user, "NATS_PASSWORD": passwords[user], "NATS_INBOX_PREFIX": prefix}
	}
	return passwords, as
}

// programEnv, set in a child process's environment to a test's name, makes
// Program run the program's main there instead of the test.
const programEnv = "REQREPLY_PROGRAM_CHILD"

// Program returns the command that runs main, a program's main function,
// with args, in a child process: the test binary run again, for the test t
// alone (a top-level test), which calls Program first; in the child,
// Program calls main, which exits. What needs a process of its own is
// tested this way: output an exporter writes to the os.Stdout the process
// started with, global OpenTelemetry providers set once per process. The
// child's environment is the test's without its NATS_* and OTEL_*
// variables, plus env ("KEY=value").
func Program(t *testing.T, main func(), env []string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Getenv(programEnv) == t.Name() {
		os.Args = append([]string{os.Args[0]}, args...)
		main()
		os.Exit(0) // main exits itself; this is in case it returns
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, programEnv+"="+t.Name())
	cmd.Env = append(cmd.Env, env...)
	return cmd
}
