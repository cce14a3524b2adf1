// Reuse, proven: gather's directory copied alone into a fresh module that
// requires only nats.go builds there and runs its Examples.

package gather_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
)

// TestCopiedDirectory copies gather/*.go but the tests, and
// example_test.go, into a temporary module example.com/gathercopy whose
// go.mod requires only github.com/nats-io/nats.go, at this module's
// version (with this module's go.sum), then runs `go build ./...` and
// `go test -run Example ./...` there against a server of its own. It uses
// the module cache this module's build filled, so it runs offline.
func TestCopiedDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module of its own: not with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	dir := t.TempDir()

	// The package's files, and the Examples with their import of gather
	// turned into the copy's.
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") && f != "example_test.go" {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		src = bytes.ReplaceAll(src, []byte(`"reqreply/gather"`), []byte(`"example.com/gathercopy"`))
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), src, 0o644))
	}

	// go.mod: this module's go version, nats.go's version and its
	// dependencies'; go.sum as is.
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	natsVersion := regexp.MustCompile(`(?m)^\s*github\.com/nats-io/nats\.go (\S+)$`).FindSubmatch(mod)
	require.NotNil(t, goVersion, "go line in go.mod")
	require.NotNil(t, natsVersion, "nats.go in go.mod")
	gomod := "module example.com/gathercopy\n\ngo " + string(goVersion[1]) + "\n\nrequire github.com/nats-io/nats.go " + string(natsVersion[1]) + "\n"
	// nats.go's own dependencies at this module's versions (indirect), so
	// that the copy builds from the module cache this module's build filled,
	// without the network.
	for _, dep := range []string{"github.com/klauspost/compress", "github.com/nats-io/nkeys", "github.com/nats-io/nuid", "golang.org/x/crypto", "golang.org/x/sys"} {
		v := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(dep) + ` (\S+)`).FindSubmatch(mod)
		require.NotNil(t, v, "%s in go.mod", dep)
		gomod += "require " + dep + " " + string(v[1]) + " // indirect\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
	sum, err := os.ReadFile("../go.sum")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))

	// This module's Go environment (its module cache, build cache and
	// proxy), with go.mod tidied as needed and no workspace.
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local",
		"NATS_URL="+testserver.New(t).ClientURL())
	for _, name := range []string{"GOPATH", "GOMODCACHE", "GOPROXY", "GOCACHE", "GONOSUMDB", "GOPRIVATE"} {
		out, err := exec.Command(goBin, "env", name).Output()
		require.NoError(t, err)
		env = append(env, name+"="+strings.TrimSpace(string(out)))
	}
	for _, args := range [][]string{{"build", "./..."}, {"test", "-count=1", "-run", "Example", "./..."}} {
		cmd := exec.Command(goBin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s in the copy:\n%s", strings.Join(args, " "), out)
		t.Logf("go %s:\n%s", strings.Join(args, " "), out)
	}
	// What the copy's module needs: nats.go and what nats.go needs, no more.
	got, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	require.NotContains(t, string(got), "reqreply")
	require.NotContains(t, string(got), "nats-server")
}
