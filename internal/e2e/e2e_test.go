package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// readyTimeout bounds the wait for a process's ports and for the cluster's
// routes: 20 s (the machine is shared; this is a bound, not a guess).
const readyTimeout = 20 * time.Second

// runTimeout bounds one run of a program: 60 s; a run that takes longer
// has hung, which is a failure.
const runTimeout = 60 * time.Second

// runs is how many times each program runs: E2E_RUNS, or 20.
func runs(t *testing.T) int {
	if v := os.Getenv("E2E_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "E2E_RUNS")
		return n
	}
	return 20
}

// built holds the binaries, built once per test binary run.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds nats-server from the module pinned in go.mod (nothing to
// fetch: the tests already depend on it) and the scenario programs, into a
// directory removed when the test binary exits, and returns the directory.
func binaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "reqreply-e2e-")
		if built.err != nil {
			return
		}
		// One go build for all: -o to a directory writes each main
		// package's binary there (nats-server's named without /v2).
		args := []string{"build", "-o", built.dir + string(os.PathSeparator),
			"github.com/nats-io/nats-server/v2", "reqreply/queuegroup", "reqreply/singlereply", "reqreply/noresponders", "reqreply/multireply"}
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	require.NoError(t, built.err)
	return built.dir
}

// node is one nats-server process.
type node struct {
	name    string
	cmd     *exec.Cmd
	url     string // client URL
	cluster string // route URL
	monitor string // http monitoring URL
	done    chan struct{}
}

// kill ends the process at once (SIGKILL), as a crash would, and waits for it.
func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// startNode starts a nats-server process named name with random client,
// cluster and monitoring ports (-1), routing to seed if not empty, with
// the extra arguments given (a config file: "-c", path), and returns it
// once its ports file says where it listens.
func startNode(t *testing.T, bin, name, seed string, extra ...string) *node {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-n", name,
		"--cluster", "nats://127.0.0.1:-1", "--cluster_name", "e2e", "--ports_file_dir", dir}
	if seed != "" {
		args = append(args, "--routes", seed)
	}
	args = append(args, extra...)
	cmd := exec.Command(filepath.Join(bin, "nats-server"), args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	n := &node{name: name, cmd: cmd, done: make(chan struct{})}
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s log (exit %v):\n%s", name, exitErr, log.String())
		}
	})
	file := filepath.Join(dir, fmt.Sprintf("nats-server_%d.ports", cmd.Process.Pid))
	var ports struct{ Nats, Monitoring, Cluster []string }
	waitFor(t, name+" ports file", func() bool {
		data, err := os.ReadFile(file)
		return err == nil && json.Unmarshal(data, &ports) == nil && len(ports.Nats) > 0 && len(ports.Monitoring) > 0 && len(ports.Cluster) > 0
	})
	n.url, n.monitor, n.cluster = ports.Nats[0], ports.Monitoring[0], ports.Cluster[0]
	return n
}

// startCluster starts three nats-server processes as one cluster, each
// with the extra arguments given (see startNode), and returns them once
// each, asked from the outside (its /routez monitoring endpoint), counts
// both others as routed remotes.
func startCluster(t *testing.T, bin string, extra ...string) []*node {
	t.Helper()
	first := startNode(t, bin, "node-1", "", extra...)
	nodes := []*node{first, startNode(t, bin, "node-2", first.cluster, extra...), startNode(t, bin, "node-3", first.cluster, extra...)}
	client := &http.Client{Timeout: time.Second}
	for _, n := range nodes {
		waitFor(t, n.name+" routes", func() bool { return remotes(client, n.monitor) >= len(nodes)-1 })
	}
	return nodes
}

// remotes is the number of distinct servers routed to, per /routez.
func remotes(client *http.Client, monitor string) int {
	resp, err := client.Get(monitor + "/routez")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var rz struct {
		Routes []struct {
			RemoteName string `json:"remote_name"`
			RemoteID   string `json:"remote_id"`
		} `json:"routes"`
	}
	if json.NewDecoder(resp.Body).Decode(&rz) != nil {
		return 0
	}
	seen := map[string]bool{}
	for _, r := range rz.Routes {
		seen[r.RemoteID] = true
	}
	return len(seen)
}

// delivered is how many messages the server at monitor has sent to the
// client connection named name, per /connz; 0 if there is none.
func delivered(monitor, name string) int64 {
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(monitor + "/connz?limit=1024")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var cz struct {
		Connections []struct {
			Name    string `json:"name"`
			OutMsgs int64  `json:"out_msgs"`
		} `json:"connections"`
	}
	if json.NewDecoder(resp.Body).Decode(&cz) != nil {
		return 0
	}
	for _, c := range cz.Connections {
		if c.Name == name {
			return c.OutMsgs
		}
	}
	return 0
}

// waitFor polls cond, which asks the processes, every 5 ms until it holds,
// and fails t after readyTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready within %v", what, readyTimeout)
		}
		<-tick.C
	}
}

// natsURL lists every node's client URL.
func natsURL(nodes []*node) string {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	return strings.Join(urls, ",")
}

// run runs a built program with NATS_URL set and returns its exit code,
// stdout and stderr. A run that outlives runTimeout is killed and fails t.
func run(t *testing.T, bin, url, program string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, program), args...)
	cmd.Env = append(os.Environ(), "NATS_URL="+url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s %v hung:\n%s%s", program, args, stdout.String(), stderr.String())
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}

// TestSeparateProcesses runs queuegroup's demos, singlereply, noresponders
// and multireply, E2E_RUNS times each (20 by default), against a cluster of
// three nats-server processes with NATS_URL listing all three: every run
// must exit 0.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the tests that build nats-server and run separate processes")
	}
	bin := binaries(t)
	url := natsURL(startCluster(t, bin))
	type program struct {
		name string
		args []string
	}
	programs := []program{
		{"queuegroup", []string{"-demo", "share", "-requests", "60", "-concurrency", "4"}},
		{"queuegroup", []string{"-demo", "mixed", "-requests", "60", "-concurrency", "4"}},
		{"queuegroup", []string{"-demo", "drain", "-requests", "60", "-concurrency", "4"}},
		{"queuegroup", []string{"-demo", "scale", "-requests", "60", "-concurrency", "4"}},
		{"queuegroup", []string{"-demo", "gone", "-requests", "60", "-concurrency", "4"}},
		{"queuegroup", []string{"-demo", "die", "-requests", "60", "-concurrency", "4", "-retry", "-timeout", "250ms"}},
		{"queuegroup", []string{"-demo", "micro", "-requests", "60", "-concurrency", "4"}},
		{"singlereply", nil},
		{"noresponders", nil},
		{"multireply", []string{"-max", "5", "-delay", "0"}},
	}
	n := runs(t)
	for _, p := range programs {
		t.Run(p.name+" "+strings.Join(p.args, " "), func(t *testing.T) {
			failures, transit, waited := 0, 0, 0
			for i := range n {
				code, stdout, stderr := run(t, bin, url, p.name, p.args...)
				if code != 0 {
					failures++
					t.Errorf("run %d of %d: exit %d\n%s%s", i+1, n, code, stdout, stderr)
				}
				if strings.Contains(stdout, "in transit:") {
					transit++
				}
				if strings.Contains(stdout, "interest: waited") {
					waited++
				}
			}
			t.Logf("%d runs, %d failures; %d printed a wait for interest; %d counted requests lost in transit (no guarantee; exit 0)", n, failures, waited, transit)
		})
	}
}

// TestKillDuringRun kills (SIGKILL) the nats-server process the queuegroup
// requester is connected to (the program says which), once that node has
// delivered 2000 replies to it, in a run with -retry. The program must end on its own, within its bound, print
// the requester's disconnect and reconnect, and report every request: with
// -retry, each answered exactly once.
func TestKillDuringRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the tests that build nats-server and run separate processes")
	}
	bin := binaries(t)
	nodes := startCluster(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "queuegroup"),
		"-requests", "20000", "-concurrency", "8", "-timeout", "2s", "-retry", "-reconnect-wait", "100ms")
	cmd.Env = append(os.Environ(), "NATS_URL="+natsURL(nodes))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// Read the events as they come; the requester's "connected to" line
	// names its node: kill that one.
	var stderr strings.Builder
	killed := ""
	scan := bufio.NewScanner(stderrPipe)
	for scan.Scan() {
		line := scan.Text()
		stderr.WriteString(line + "\n")
		if killed == "" && strings.Contains(line, "queuegroup requester: connected to ") {
			name := strings.Fields(strings.SplitN(line, "connected to ", 2)[1])[0]
			for _, n := range nodes {
				if n.name == name {
					// Mid-run: once the node has delivered 2000 messages to
					// the requester (its monitoring endpoint says so).
					waitFor(t, name+" delivering replies", func() bool { return delivered(n.monitor, "queuegroup requester") >= 2000 })
					n.kill()
					killed = name
				}
			}
			require.NotEmpty(t, killed, "no node named %q", name)
		}
	}
	_, _ = io.Copy(io.Discard, stderrPipe)
	err = cmd.Wait()
	require.NoError(t, ctx.Err(), "the run hung:\n%s%s", stdout.String(), stderr.String())
	out, events := stdout.String(), stderr.String()
	t.Logf("killed %s\n%s%s", killed, out, events)
	require.NoError(t, err, "exit status")
	assert.Contains(t, events, "queuegroup requester: disconnected from")
	assert.Contains(t, events, "queuegroup requester: reconnected to")
	assert.NotContains(t, events, "panic")
	assert.Contains(t, out, "verified: 20000 requests")
}
