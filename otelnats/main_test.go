// The tests' and the Examples' server: TestMain starts one embedded
// nats-server and sets NATS_URL to it; each test starts servers of its own.

package otelnats_test

import (
	"os"
	"testing"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.RunWithServer(m)) }
