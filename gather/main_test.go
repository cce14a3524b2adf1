// The tests' and the Examples' server: TestMain starts one embedded
// nats-server and sets NATS_URL to it, so that the Examples connect as a
// user's program would; each test starts servers of its own.

package gather_test

import (
	"os"
	"testing"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.RunWithServer(m)) }
