// Package e2e runs the built scenario programs against real, separate
// nats-server processes: three of them on 127.0.0.1 as a cluster, built from
// the nats-server module pinned in go.mod, with NATS_URL listing all three,
// as a user would run them. It holds tests only; `go test -short` skips
// them. E2E_RUNS sets how many times each program runs (20 by default).
package e2e
